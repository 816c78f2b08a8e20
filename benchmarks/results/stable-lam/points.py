"""The stable phase at a lower rate weight than the rung's (issue 11).

The top-rung trial (``../top-rung/``) found `-q 7` 7-17 % cheaper on 3 of 5 train clips when its
fit branched off a stable phase run at q8's weight instead of its own. Variant ``shareF`` runs
the stable phase (the first 60 % of the schedule) at F times the smallest rung's weight, then
each rung's decay at its own (``codec.encoder.STABLE_LAM_SHARE``, a trial constant: 1.0 = the
encoder). One train clip, one variant, `medium`, rungs 1/3/5/7 (benchmarks/trials.py).

    PYTHONPATH=. python benchmarks/results/stable-lam/points.py CLIP FRAMES REDUCE shareF OUT.jsonl
"""
from __future__ import annotations

import sys

import codec.encoder
from benchmarks.trials import run_point


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, out = argv[:5]

    def patch() -> None:
        if not hasattr(codec.encoder, "STABLE_LAM_SHARE"):
            raise SystemExit("git apply benchmarks/results/stable-lam/stable_lam.patch first")
        codec.encoder.STABLE_LAM_SHARE = float(variant.removeprefix("share"))

    run_point(clip, int(frames), int(reduce), variant, out, patch=patch, preset="medium")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
