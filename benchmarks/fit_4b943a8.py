"""Frozen copy of the encoder's v2 fit loop as of commit 4b943a8 (the reference of
``benchmarks/speed.py``): ``codec/finetune.py``'s ``start_fit``/``run_fit``/``finish_fit``,
and ``metanerv/rate.py``'s per-tensor ``RateModel``.

Do not edit: it is what the current loop is timed and judged against. Only ``wsd_lr``,
``decay_start``, ``FitSettings``, ``CodedGop``, ``initial_step``, the rate helpers, the
autograd ``reconstruction_loss`` (its default, unfused form) and the model come from the live
modules (unchanged since then).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call
from tqdm import tqdm

from codec.finetune import CodedGop, FitSettings, decay_start, wsd_lr
from metanerv.rate import F16_TINY, INIT_SCALE, f16_ste, initial_step, laplace_bits, round_ste
from metanerv.losses import psnr, reconstruction_loss
from metanerv.model import NeRV, decode_param_names, frame_times


RATE_GAIN = 0.05  # 4b943a8's --bpp dual ascent (the live encoder searches lam instead)


class RateModel(torch.nn.Module):
    def __init__(self, residuals: dict[str, Tensor], init_steps: dict[str, float],
                 init_scale: float | None = None) -> None:
        super().__init__()
        self.names = list(residuals)
        dev = next(iter(residuals.values())).device
        self.log_step = torch.nn.ParameterDict({
            _key(k): torch.nn.Parameter(torch.tensor(math.log(init_steps[k]), device=dev))
            for k in self.names})
        self.log_scale = torch.nn.ParameterDict({
            _key(k): torch.nn.Parameter(torch.tensor(math.log(init_scale or INIT_SCALE), device=dev))
            for k in self.names})

    def step(self, name: str) -> Tensor:
        return f16_ste(self.log_step[_key(name)].exp().clamp(min=F16_TINY, max=6e4))

    def scale(self, name: str) -> Tensor:
        return self.log_scale[_key(name)].exp().clamp(min=0.02, max=1e4)

    def quantized(self, residuals: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: round_ste(r / self.step(k)) * self.step(k) for k, r in residuals.items()}

    def bits(self, residuals: dict[str, Tensor], noise: bool = True) -> Tensor:
        total = None
        for k, r in residuals.items():
            x = r / self.step(k)
            x = x + (torch.rand_like(x) - 0.5) if noise else round_ste(x)
            b = laplace_bits(x, self.scale(k)).sum()
            total = b if total is None else total + b
        return total

    def step_value(self, name: str) -> float:
        return float(self.step(name).detach())


def _key(name: str) -> str:
    return name.replace(".", "__")


@dataclass
class FitState:
    resid: dict[str, Tensor]
    rate: RateModel
    opt: torch.optim.Optimizer
    gen: torch.Generator
    lam: float = 0.3
    step: int = 0
    bpp: float = 0.0


def start_fit(model: NeRV, base: dict[str, Tensor] | None, s: FitSettings) -> FitState:
    params = dict(model.named_parameters())
    names = decode_param_names(model)
    resid = {}
    for k in names:
        b = base[k].to(params[k].device) if base is not None else None
        w = params[k].detach()
        resid[k] = (w - b if b is not None else w).clone().requires_grad_(True)
    steps = {k: initial_step(base[k] if base is not None else None, params[k].detach()) for k in names}
    rate = RateModel(resid, steps)
    opt = torch.optim.Adam([{"params": list(resid.values()), "lr": s.lr},
                            {"params": list(rate.parameters()), "lr": s.rate_lr}])
    return FitState(resid, rate, opt, torch.Generator().manual_seed(s.seed), lam=s.lam)


def run_fit(model: NeRV, frames: Tensor, base: dict[str, Tensor] | None, state: FitState,
            s: FitSettings, until: int, pixels: int, progress: bool = True, desc: str = "fit",
            shown_pixels: int | None = None) -> FitState:
    # shown_pixels: the encoder's call passes the progress bar's denominator since 74aa879;
    # this loop's bar keeps its own (display only, no effect on the fit being timed).
    n = frames.shape[0]
    names = list(state.resid)
    dev = frames.device
    bases = {k: (base[k].to(dev) if base is not None else None) for k in names}
    bar = tqdm(range(state.step, until), desc=desc, disable=not progress, leave=False, unit="step")
    smooth = None
    for step in bar:
        f = wsd_lr(step, s.steps, 1.0, warmup=max(s.steps // 20, 1), decay_from=decay_start(s))
        state.opt.param_groups[0]["lr"] = s.lr * f
        state.opt.param_groups[1]["lr"] = s.rate_lr * f
        idx = torch.randperm(n, generator=state.gen)[: s.batch] if n > s.batch else torch.arange(n)
        target = frames[idx.to(dev)]
        q = state.rate.quantized(state.resid)
        weights = {k: (bases[k] + q[k] if bases[k] is not None else q[k]) for k in names}
        pred = functional_call(model, weights, (frame_times(idx, n).to(dev),))
        dist = reconstruction_loss(pred, target, s.l1_weight)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed * 1_000_003 + step)
            bits = state.rate.bits(state.resid)
        loss = dist + state.lam * bits / pixels
        state.opt.zero_grad(set_to_none=True)
        loss.backward()
        state.opt.step()
        if s.target_bpp:
            with torch.no_grad():
                state.bpp = float(state.rate.bits(state.resid, noise=False)) / pixels
            state.lam = float(np.clip(state.lam * math.exp(RATE_GAIN * math.log(state.bpp / s.target_bpp)),
                                      1e-4, 1e4))
        if progress and step % 10 == 0:
            p = float(psnr(pred.detach(), target))
            smooth = p if smooth is None else 0.7 * smooth + 0.3 * p
            bar.set_postfix(psnr=f"{smooth:.2f}dB", bpp=f"{float(bits.detach()) / pixels:.3f}")
    bar.close()
    state.step = until
    return state


def finish_fit(state: FitState) -> CodedGop:
    names = list(state.resid)
    steps, levels = [], []
    for k in names:
        step = np.float16(state.rate.step_value(k))
        lv = torch.round(state.resid[k].detach().float().cpu() / float(np.float32(step)))
        steps.append(step)
        levels.append(lv.to(torch.int64).numpy())
    return CodedGop(names, steps, levels)
