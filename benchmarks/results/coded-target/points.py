"""What a GOP coded at a smaller size is fitted to (issue 11): the source box-averaged ("area",
the encoder until 2026-11-29) or the least-squares prefilter of the decoder's bicubic resize
("prefilter", metanerv.model.prefilter_frames), or a blend of the two ("blend0.5": halfway). One train clip, one variant, `medium`, rungs
1/3/5/7 (benchmarks/trials.py).

    PYTHONPATH=. python benchmarks/results/coded-target/points.py CLIP FRAMES REDUCE VARIANT OUT.jsonl
"""
from __future__ import annotations

import sys

import codec.encoder
from benchmarks.trials import run_point


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, out = argv[:5]

    share = {"area": 0.0, "prefilter": 1.0}.get(variant) if not variant.startswith("blend") else float(variant[5:])

    def patch() -> None:  # the variants as the encoder's PREFILTER_SHARE (0, 1, or "blendB": B)
        codec.encoder.PREFILTER_SHARE = share

    run_point(clip, int(frames), int(reduce), variant, out, patch=patch, preset="medium")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
