"""Where should the top of the ladder get its bytes at `medium`: a larger coded size, or a
smaller rate weight at the size the middle rungs use? (issue 11)

Today `--scale auto` aims q1-q5 at 96 frame visits, q6 at 48 and q7/q8 at 24 (a larger coded
size), and the budget floor (`codec.ladder.lam_floor`, ~4 / visits) raises q8's weight to q7's.
Variants (each rung encoded alone, as `nervc encode -q N` writes it):

* ``ladder``: the encoder as shipped (run for the rungs that differ: 6, 7; 1, 3, 5 are shared);
* ``v96``: every rung at 96 visits, and the ladder extended by q9 (lam 0.027) and q10 (0.012)
  with ``FLOOR_LAM_VISITS = 1`` so that at 96 visits none of them is raised.

    PYTHONPATH=. python benchmarks/results/top-size/points.py CLIP FRAMES REDUCE VARIANT OUT.jsonl
"""
from __future__ import annotations

import sys

import codec.ladder
import codec.presets
from benchmarks.trials import run_point

RUNGS = {"base": (1, 3, 5), "ladder": (6, 7), "v96": (6, 7, 8, 9, 10)}


def patch_v96() -> None:
    for q in list(codec.presets.AUTO_VISITS_BY_RUNG):
        codec.presets.AUTO_VISITS_BY_RUNG[q] = 96.0
    codec.ladder.LADDER[9] = codec.ladder.Rung(lam=0.027)
    codec.ladder.LADDER[10] = codec.ladder.Rung(lam=0.012)
    codec.presets.AUTO_VISITS_BY_RUNG[9] = codec.presets.AUTO_VISITS_BY_RUNG[10] = 96.0
    codec.ladder.FLOOR_LAM_VISITS = 1.0


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, out = argv[:5]
    if variant == "v96":
        patch_v96()
    for q in RUNGS[variant]:  # one encode per rung: what `nervc encode -q N` writes
        run_point(clip, int(frames), int(reduce), variant, out, qualities=(q,), preset="medium")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
