"""Fitting a GOP coded at a smaller size through the decoder's resize (issue 11, 2026-11-29): the
distortion is taken on the full-size frames against the network's frame resized as the decoder
resizes it (``metanerv.model.cubic_resize_matrix``, no clamp inside the loss), instead of on a
coded-size target. A patch of the encoder for this trial; same steps as the encoder's, so the
records' encode times show what the larger loss costs. Variant names: ``through`` (this) and
``halfway`` (the encoder as it is, for the anchor).

    PYTHONPATH=. python benchmarks/results/fit-through-resize/points.py CLIP FRAMES REDUCE VARIANT OUT.jsonl
"""
from __future__ import annotations

import sys

import codec.encoder
import codec.finetune
from benchmarks.trials import run_point
from metanerv.model import cubic_resize_matrix

SIZES: dict[str, tuple[int, int]] = {}  # coded (h, w) and full (H, W) of the GOP being fitted


def patch() -> None:
    def full_target(frames, height, width):
        SIZES["coded"], SIZES["full"] = (height, width), tuple(frames.shape[-2:])
        return frames

    base = codec.finetune.FitState.distortion

    def through(self, pred, target, s):
        (h, w), (H, W) = SIZES["coded"], SIZES["full"]
        y = pred[..., :h, :w]
        if (h, w) != (H, W):
            y = cubic_resize_matrix(h, H).to(y) @ (y @ cubic_resize_matrix(w, W).to(y).t())
        return base(self, y, target[..., :H, :W], s)

    codec.encoder.coded_target = full_target
    codec.finetune.FitState.distortion = through


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, out = argv[:5]
    run_point(clip, int(frames), int(reduce), variant, out, patch=patch if variant == "through" else None,
              preset="medium")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
