"""The latent encoder: a GOP's frames -> the grid latents its fit starts from.

The coarse grid is the network's per-GOP content (``[A, C0, H/S, W/S]`` anchors, linearly
interpolated in time). Started from the init's grid it holds nothing of the GOP, and the few
hundred steps a preset affords spend many of their updates discovering the layout of the
scene. This network (HNeRV's content encoder, in the small) reads each frame and proposes that
frame's latents as a change to the init's grid; :func:`fit_anchors` turns the per-frame
proposals into the ``A`` anchors the decoder interpolates (least squares). It runs once per
GOP in the encoder and is not stored in the bitstream: the decoder reads the fitted anchors.
"""
from __future__ import annotations

import json
import os

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from nervcore.atomic import atomic_output
from nervcore.errors import NervcError


class LatentEncoder(nn.Module):
    """Frames ``[n, 3, Hp, Wp]`` in [0, 1] (padded to the stride ``S``) -> per-frame changes to
    the init's grid ``[n, C0, Hp/S, Wp/S]``: a patch embedding of each ``S x S`` block, one
    residual 3x3 mixing layer, a 3x3 projection. The projection starts at zero, so an untrained
    encoder proposes the init's own grid."""

    def __init__(self, grid_channels: int, stride: int, width: int = 64) -> None:
        super().__init__()
        self.stride = int(stride)
        self.embed = nn.Conv2d(3 * self.stride * self.stride, width, 1)
        self.mix = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, grid_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, frames: Tensor) -> Tensor:
        x = F.gelu(self.embed(F.pixel_unshuffle(frames - 0.5, self.stride)))
        x = x + F.gelu(self.mix(x))
        return self.out(x)


def interpolation_matrix(times: Tensor, anchors: int) -> Tensor:
    """``[n, A]``: row ``i`` holds the weights with which the model reads anchor ``k`` at time
    ``times[i]`` (``metanerv.model.NeRV._grid_at``: linear between neighbours)."""
    n = times.shape[0]
    w = torch.zeros(n, anchors, dtype=torch.float32, device=times.device)
    if anchors == 1:
        return w.fill_(1.0)
    pos = times.float().clamp(0, 1) * (anchors - 1)
    lo = pos.floor().clamp(max=anchors - 2).long()
    frac = pos - lo.float()
    rows = torch.arange(n, device=times.device)
    w[rows, lo] = 1.0 - frac
    w[rows, lo + 1] += frac
    return w


def fit_anchors(latents: Tensor, times: Tensor, prior: Tensor, ridge: float = 1e-2) -> Tensor:
    """Anchors ``[A, C, h, w]`` whose interpolation at ``times`` is closest to the per-frame
    ``latents`` ``[n, C, h, w]`` (least squares), pulled towards ``prior`` (the init's anchors)
    with weight ``ridge`` so anchors no frame reaches keep the init's values. Differentiable."""
    a = prior.shape[0]
    w = interpolation_matrix(times, a)
    lhs = w.t() @ w + ridge * torch.eye(a, device=w.device)
    rhs = w.t() @ latents.flatten(1) + ridge * prior.flatten(1)
    return torch.linalg.solve(lhs, rhs).view_as(prior)


def start_grid(encoder: LatentEncoder, frames: Tensor, times: Tensor, init_grid: Tensor,
               ridge: float = 1e-2) -> Tensor:
    """The grid a fit starts from: ``init_grid`` ``[A, C, h, w]`` (the init's, resampled to the
    GOP) moved by the encoder's per-frame proposals for ``frames`` at ``times``."""
    w = interpolation_matrix(times, init_grid.shape[0])
    at_frames = (w @ init_grid.flatten(1)).view(times.shape[0], *init_grid.shape[1:])
    return fit_anchors(at_frames + encoder(frames), times, init_grid, ridge)


LATENT_SUFFIX = ".latent.safetensors"
FORMAT = "nervc-latent-encoder-1"


def save_latent_encoder(encoder: LatentEncoder, path: str | os.PathLike, init_digest: bytes,
                        info: dict | None = None) -> None:
    """Write ``encoder`` (safetensors, never pickle) for the init whose digest is ``init_digest``:
    its proposals are changes to that init's grid, so it serves no other."""
    meta = {"format": FORMAT, "init": init_digest.hex(), "grid_channels": str(encoder.out.out_channels),
            "stride": str(encoder.stride), "width": str(encoder.embed.out_channels),
            "info": json.dumps(info or {})}
    with atomic_output(path) as tmp:
        save_file({k: v.detach().float().contiguous() for k, v in encoder.state_dict().items()},
                  str(tmp), metadata=meta)


def load_latent_encoder(path: str | os.PathLike) -> tuple[LatentEncoder, str]:
    """``(encoder, init digest hex)`` from a file :func:`save_latent_encoder` wrote."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise NervcError(f"{path}: not a nervc latent encoder file")
        enc = LatentEncoder(int(meta["grid_channels"]), int(meta["stride"]), int(meta["width"]))
        enc.load_state_dict(load_file(str(path)), strict=True)
    except (OSError, SafetensorError, KeyError, ValueError, RuntimeError) as e:
        raise NervcError(f"{path}: cannot read the latent encoder ({e})") from None
    return enc.eval(), meta["init"]

