"""Fitting one GOP's network: fine-tune, choose per-tensor coding, prune, quantization-aware tune.

Weights are handled as a dict of plain tensors and evaluated with ``torch.func.functional_call``
so the same module serves every phase: free weights first, then ``base + Q(residual * mask)``
where ``base`` is the init (delta coding) or zero (absolute coding) and ``Q`` is per-channel
fake quantization with a straight-through gradient.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call
from tqdm import tqdm

from codec.prune import global_magnitude_masks
from codec.quantize import fake_quantize, quantize
from metanerv.losses import psnr, reconstruction_loss
from metanerv.model import NeRV, decode_param_names, frame_times


@dataclass
class FitSettings:
    steps: int = 600
    qat_steps: int | None = None  # default: qat_fraction * steps
    lr: float = 5e-3
    batch: int = 8
    l1_weight: float = 0.7
    bits: int = 6
    prune: float = 0.2
    qat_fraction: float = 0.2  # extra steps after pruning, as a fraction of ``steps``
    qat_lr: float = 1e-3
    seed: int = 0


@dataclass
class CodedTensor:
    """A tensor ready for the bitstream: coding mode, integer levels and step sizes."""

    name: str
    mode: int  # 0 absolute, 1 delta from init
    bits: int
    levels: Tensor  # int64, same shape as the weight
    scales: Tensor  # float32 with float16 values


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _entropy_bits(levels: Tensor) -> float:
    """Empirical entropy of the levels plus the frequency table, a proxy for coded size."""
    _, counts = torch.unique(levels, return_counts=True)
    p = counts.double() / counts.sum()
    return float(-(counts.double() * torch.log2(p)).sum()) + 16 * len(counts)


def _train(model: NeRV, frames: Tensor, weights: Callable[[], dict[str, Tensor]],
           leaves: list[Tensor], steps: int, lr: float, s: FitSettings, gen: torch.Generator,
           desc: str, progress: bool) -> None:
    n = frames.shape[0]
    opt = torch.optim.Adam(leaves, lr=lr)
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False, unit="step")
    smooth = None
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=max(steps // 20, 1))
        idx = torch.randperm(n, generator=gen)[: s.batch] if n > s.batch else torch.arange(n)
        target = frames[idx]
        t = frame_times(idx, n).to(frames.device)
        pred = functional_call(model, weights(), (t,))
        loss = reconstruction_loss(pred, target, s.l1_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress:
            p = float(psnr(pred.detach(), target))
            smooth = p if smooth is None else 0.9 * smooth + 0.1 * p
            bar.set_postfix(psnr=f"{smooth:.2f}dB")
    bar.close()


def fit_weights(model: NeRV, frames: Tensor, s: FitSettings, progress: bool = True,
                label: str = "") -> dict[str, Tensor]:
    """Phase 1: fine-tune the decode weights of ``model`` on ``frames`` ``[n, 3, Hp, Wp]``."""
    gen = torch.Generator().manual_seed(s.seed)
    params = dict(model.named_parameters())
    free = {k: params[k].detach().clone().requires_grad_(True) for k in decode_param_names(model)}
    _train(model, frames, lambda: free, list(free.values()), s.steps, s.lr, s, gen,
           f"fit{label}", progress)
    return {k: v.detach() for k, v in free.items()}


def code_weights(model: NeRV, frames: Tensor, weights: dict[str, Tensor],
                 init: dict[str, Tensor] | None, s: FitSettings, progress: bool = True,
                 label: str = "") -> list[CodedTensor]:
    """Phase 2: per-tensor coding choice, global pruning and quantization-aware tuning.

    ``init`` holds the init's decode tensors (grid already resampled) for delta coding, or None.
    """
    gen = torch.Generator().manual_seed(s.seed + 1)
    names = list(weights)
    base, resid, modes = {}, {}, {}
    for k in names:
        w = weights[k]
        candidates = [(0, torch.zeros_like(w))]
        if init is not None:
            candidates.append((1, init[k].to(w.device)))
        best = min(candidates, key=lambda c: _entropy_bits(quantize(w - c[1], s.bits)[0]))
        modes[k], base[k] = best
        resid[k] = (w - base[k]).clone()

    masks = global_magnitude_masks(resid, s.prune)
    resid = {k: (resid[k] * masks[k]).requires_grad_(True) for k in names}

    def quantized() -> dict[str, Tensor]:
        return {k: base[k] + fake_quantize(resid[k] * masks[k], s.bits) for k in names}

    qat_steps = s.qat_steps if s.qat_steps is not None else int(round(s.steps * s.qat_fraction))
    if qat_steps:
        _train(model, frames, quantized, list(resid.values()), qat_steps, s.qat_lr, s, gen,
               f"prune+quant{label}", progress)
    coded = []
    for k in names:
        levels, scales = quantize(resid[k].detach() * masks[k], s.bits)
        coded.append(CodedTensor(k, modes[k], s.bits, levels.cpu(), scales.cpu()))
    return coded


def frames_to_tensor(frames: np.ndarray) -> Tensor:
    """uint8 ``[n, H, W, 3]`` -> float ``[n, 3, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
