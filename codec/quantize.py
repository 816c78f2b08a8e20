"""Symmetric uniform quantization, one step size per output channel.

Step sizes are rounded to float16 because that is how the bitstream stores them: training,
the encoder's PSNR and the decoder then all see exactly the same reconstructed weights.
"""
from __future__ import annotations

import torch
from torch import Tensor

F16_MAX = 65504.0


def qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def channel_scales(r: Tensor, bits: int) -> Tensor:
    """Step per output channel (dim 0) for rank >= 2, one step for rank <= 1; float16 values."""
    a = r.detach().abs()
    amax = a.flatten(1).amax(dim=1) if r.dim() >= 2 else a.max().reshape(1)
    scales = (amax / qmax(bits)).clamp(max=F16_MAX).to(torch.float16).to(torch.float32)
    return scales


def _bcast(scales: Tensor, r: Tensor) -> Tensor:
    if r.dim() >= 2:
        return scales.view(-1, *([1] * (r.dim() - 1)))
    return scales.view(*([1] * max(r.dim(), 1)))[..., 0] if r.dim() == 0 else scales


def quantize(r: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """-> (integer levels in [-qmax, qmax] as int64, float16-valued scales as float32)."""
    scales = channel_scales(r, bits)
    s = _bcast(scales, r)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.where(s > 0, torch.round(r.detach() / safe), torch.zeros_like(r))
    m = qmax(bits)
    return q.clamp(-m, m).to(torch.int64), scales


def dequantize(q: Tensor, scales: Tensor) -> Tensor:
    return q.to(torch.float32) * _bcast(scales.to(torch.float32), q)


def fake_quantize(r: Tensor, bits: int) -> Tensor:
    """Quantize-dequantize in the forward pass, identity gradient (straight-through)."""
    q, scales = quantize(r, bits)
    return r + (dequantize(q, scales) - r).detach()
