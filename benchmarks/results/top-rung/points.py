"""Does the top rung buy picture at `medium` once it is fitted at its own rate weight? (issue 11)

At `medium` the q7/q8 group gets ~24 frame visits, so ``codec.ladder.lam_floor`` raises q8's
weight (0.06) to q7's (0.13) and q8 is a copy of q7. Variant ``floorF`` sets
``codec.ladder.FLOOR_LAM_VISITS = F`` (4.0 = the encoder; 1.5 lets q8 keep its own weight).
One train clip, one variant, rungs 6/7/8 (benchmarks/trials.py). ``floorF@PRESET`` runs rungs
5-8 at another preset (the floor is per frame visit, so a faster preset raises more rungs).

    PYTHONPATH=. python benchmarks/results/top-rung/points.py CLIP FRAMES REDUCE floorF[@PRESET] OUT.jsonl
"""
from __future__ import annotations

import sys

import codec.ladder
from benchmarks.trials import run_point


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, out = argv[:5]

    floor, _, preset = variant.removeprefix("floor").partition("@")

    def patch() -> None:
        codec.ladder.FLOOR_LAM_VISITS = float(floor)

    run_point(clip, int(frames), int(reduce), variant, out, patch=patch,
              qualities=(5, 6, 7, 8) if preset else (6, 7, 8), preset=preset or "medium")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
