"""Does a short GOP need a floor on the fit's steps, not only on its frame visits? (issue 11)

`--scale auto` picks the largest coded size at which every frame still gets the rung's visits
(96 for q1-q5, 48 for q6, 24 for q7/q8). Visits per frame do not see the GOP's length: a 9-frame
GOP at 24 visits is ~110 steps of 2 frames, and on the bench BasketballDrill (832x480, 9 frames)
wrote q7 at 417x240 in 110 steps, 0.070 bpp at 23.34 dB, below its own q6 (288x166, 221 steps:
0.025 bpp, 23.46 dB). Variants (each rung encoded alone, as `nervc encode -q N` writes it):

* ``ladder``: the encoder as shipped (rungs 6-8; 1, 3, 5 shared as ``base``: they are unchanged
  on these clips, q5 already has 290+ steps or the smallest size);
* ``minN``: the coded size is also reduced until the fit has at least N steps (never below
  the smallest size `--scale auto` codes).

    PYTHONPATH=. python benchmarks/results/min-steps/points.py CLIP FRAMES REDUCE VARIANT OUT.jsonl
"""
from __future__ import annotations

import sys

import codec.encoder
import codec.presets
from benchmarks.trials import run_point

RUNGS = {"base": (1, 3, 5)}


def patch_min_steps(n: int) -> None:
    p = codec.presets
    original = p.auto_coded_size

    def auto(preset, width, height, frames, stride=16, given=None, visits=None, tune=p.COST_TUNE):
        w, h = original(preset, width, height, frames, stride, given, visits, tune)
        if (given or {}).get("steps") is not None:
            return w, h
        top = min(p.AUTO_MAX_SCALE, min(width, height) / p.AUTO_MIN_SIDE)

        def steps(f: float) -> int:
            cw, ch = p._reduced(width, height, f)
            return p.schedule(preset, width, height, frames, stride, (ch, cw), tune).steps
        if top <= 1.0 or p.schedule(preset, width, height, frames, stride, (h, w), tune).steps >= n:
            return w, h
        if steps(top) < n:
            return p._reduced(width, height, top)
        lo, hi = 1.0, top
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if steps(mid) < n else (lo, mid)
        cw, ch = p._reduced(width, height, hi)
        return (cw, ch) if cw * ch < w * h else (w, h)
    p.auto_coded_size = auto
    codec.encoder.auto_coded_size = auto


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, out = argv[:5]
    if variant.startswith("min"):
        patch_min_steps(int(variant[3:]))
    for q in RUNGS.get(variant, (6, 7, 8)):  # one encode per rung: what `nervc encode -q N` writes
        run_point(clip, int(frames), int(reduce), variant, out, qualities=(q,), preset="medium")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
