"""Fitting a GOP coded at a smaller size through the decoder's resize (issue 11, 2026-11-29): the
distortion is taken on the full-size frames against the network's frame resized as the decoder
resizes it (``metanerv.model.cubic_resize_matrix``, no clamp inside the loss), instead of on a
coded-size target. A patch of the encoder for this trial; same steps as the encoder's, so the
records' encode times show what the larger loss costs. Variant names: ``through`` (this),
``mse-through`` (only the log-MSE term through the resize: :func:`patch_mse`) and ``halfway``
(the encoder as it is, for the anchor).

    PYTHONPATH=. python benchmarks/results/fit-through-resize/points.py CLIP FRAMES REDUCE VARIANT OUT.jsonl
"""
from __future__ import annotations

import sys
from dataclasses import replace

import codec.encoder
import codec.finetune
from benchmarks.trials import run_point
from metanerv.losses import MSE_PRICE
from metanerv.model import cubic_resize_matrix

SIZES: dict = {}  # coded (h, w) and full (H, W) of the GOP being fitted; mse-through: its frames


def resized(pred, coded: tuple[int, int], full: tuple[int, int]):
    """The network's frames cropped to the coded size and resized as the decoder resizes them
    (no clamp inside the loss)."""
    (h, w), (H, W) = coded, full
    y = pred[..., :h, :w]
    if (h, w) != (H, W):
        y = cubic_resize_matrix(h, H).to(y) @ (y @ cubic_resize_matrix(w, W).to(y).t())
    return y


def patch() -> None:
    def full_target(frames, height, width):
        SIZES["coded"], SIZES["full"] = (height, width), tuple(frames.shape[-2:])
        return frames

    base = codec.finetune.FitState.distortion

    def through(self, pred, target, s):
        H, W = SIZES["full"]
        return base(self, resized(pred, SIZES["coded"], SIZES["full"]), target[..., :H, :W], s)

    codec.encoder.coded_target = full_target
    codec.finetune.FitState.distortion = through


def patch_mse() -> None:
    """``mse-through``: only the log-MSE half of the balanced loss through the resize, against the
    full-size frame; the L1 + SSIM half stays on the encoder's coded-size target. The batch's
    frame indices are found from the coded targets' per-frame sums (a trial's shortcut)."""
    halfway = codec.encoder.coded_target

    def keep_full(frames, height, width):
        out = halfway(frames, height, width)
        SIZES["coded"], SIZES["full"] = (height, width), tuple(frames.shape[-2:])
        SIZES["frames"], SIZES["keys"] = frames, out.sum(dim=(1, 2, 3))
        return out

    base = codec.finetune.FitState.distortion

    def mixed(self, pred, target, s):
        h, w = SIZES["coded"]
        l1_ssim = base(self, pred, target, replace(s, distortion="ssim"))
        keys = target[..., :h, :w].sum(dim=(1, 2, 3))
        idx = (keys[:, None] - SIZES["keys"][None, :]).abs().argmin(dim=1)
        y = resized(pred, SIZES["coded"], SIZES["full"])
        mse = (y - SIZES["frames"][idx].to(y)).square().mean()
        now = mse.detach().clamp_min(1e-12)
        self.mse_mean = now if self.mse_mean is None else self.mse_mean.mul(0.95).add_(now, alpha=0.05)
        return 0.5 * MSE_PRICE * mse / self.mse_mean + 0.5 * l1_ssim

    codec.encoder.coded_target = keep_full
    codec.finetune.FitState.distortion = mixed


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, out = argv[:5]
    patches = {"through": patch, "mse-through": patch_mse}
    run_point(clip, int(frames), int(reduce), variant, out, patch=patches.get(variant), preset="medium")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
