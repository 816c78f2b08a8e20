"""Should a rung's rate weight count bits per *source* pixel rather than per coded pixel? (issue 11 item 4)

The fit minimises ``distortion + lam * bits / coded pixels``. `--scale auto` codes clips at
sizes from 110x90 to 208x120 at `medium`, so a rung writes about the same bits per *coded*
pixel on every clip (q5 on the bench: 0.047-0.074) and its rate per source pixel falls with the
reduction factor f = source / coded pixels (0.0185 bpp at f = 2.56 on QCIF, 0.0034 at f = 16 on
832x480: 5.4x apart; the issue asks for 2x). Variant ``srcF``: every rung's lam multiplied by
F / f (the rate per source pixel, scaled so that a clip reduced F times keeps its lam); ``coded``:
the encoder as shipped. One train clip, one variant, rungs 1/3/5/6/7/8 in one ladder call.

    PYTHONPATH=. python benchmarks/results/rate-per-pixel/points.py CLIP FRAMES REDUCE VARIANT OUT.jsonl
"""
from __future__ import annotations

import sys
from dataclasses import replace

import codec.encoder
from benchmarks.trials import run_point


def patch_source_pixels(ref: float) -> None:
    original = codec.encoder.fit_gop_records

    def fit(chunk, gi, first, plan, settings=None, **kw):
        f = (plan.width * plan.height) / (plan.coded_width * plan.coded_height)
        settings = {q: replace(s, lam=s.lam * ref / f) for q, s in (settings or plan.settings).items()}
        return original(chunk, gi, first, plan, settings, **kw)

    codec.encoder.fit_gop_records = fit


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, out = argv[:5]
    patch = (lambda: patch_source_pixels(float(variant.removeprefix("src")))) if variant.startswith("src") else None
    run_point(clip, int(frames), int(reduce), variant, out, patch=patch, qualities=(1, 3, 5, 6, 7, 8), preset="medium")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
