"""Fitting one GOP's network: the encoder's use of the one fit (:mod:`metanerv.fit`).

:mod:`metanerv.fit` holds the rate-distortion fit itself (settings, state, schedule, step,
divergence guard), which meta-training's coded inner loop runs too. Here it is given a GOP:
:func:`start_fit` starts it from a model's decode tensors, :func:`run_fit` advances it by a
range of steps on batches of the GOP's frames (``FitSettings.distortion``, ``--tune``) with a
progress bar, the state can be copied (:func:`metanerv.fit.branch`) to branch ladder rungs off
a common prefix, and :func:`finish_fit` / :func:`finish_fit_at_rate` turn it into the levels
and steps the bitstream stores.

The loop runs where the frames are (CPU or CUDA) and never waits for the device inside a step:
batches come from a generator on that device, and the progress bar reads values back only
every ``STATS_EVERY`` steps.

The measurements behind :mod:`metanerv.fit`'s choices (which may not name this repository's
benchmark folders): ``MSE_SHARE`` and ``--tune`` in benchmarks/results/fit-loss/, ``ADAM_BETAS``
and the divergence guard in benchmarks/results/fit-stability/.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call
from tqdm import tqdm

from codec.entropy import MAX_LEVEL
from metanerv.fit import DEFAULT_TUNE, DISTORTIONS, FitSettings, FitState, branch, decay_start, fit_steps, new_fit
from metanerv.losses import psnr
from metanerv.model import NeRV, decode_param_names, frame_times
from metanerv.rate import F16_TINY

__all__ = ["DEFAULT_TUNE", "DISTORTIONS", "FitSettings", "FitState", "CodedGop", "branch", "decay_start",
           "start_fit", "run_fit", "finish_fit", "finish_fit_at_rate", "fit_gop", "frames_to_tensor"]

STATS_EVERY = 10  # steps between progress-bar updates (each one waits for the device)


@dataclass
class CodedGop:
    """A fitted GOP ready for the bitstream: per tensor its float16 step and integer levels."""

    names: list[str]
    steps: list[np.float16]
    levels: list[np.ndarray]  # int64, shape of the tensor

    def weights(self, base: dict[str, Tensor] | None) -> dict[str, Tensor]:
        """The decoder's weights: ``base + float32(level) * float32(step)``."""
        out = {}
        for k, s, lv in zip(self.names, self.steps, self.levels):
            r = torch.from_numpy(lv.astype(np.float32)) * float(np.float32(s))
            out[k] = r + base[k].cpu() if base is not None else r
        return out


def start_fit(model: NeRV, base: dict[str, Tensor] | None, s: FitSettings) -> FitState:
    """A fit of ``model``'s decode tensors; residuals start at its weights minus ``base`` (zero
    when fitting from an init)."""
    params = dict(model.named_parameters())
    return new_fit({k: params[k] for k in decode_param_names(model)}, base, s)


def run_fit(model: NeRV, frames: Tensor, base: dict[str, Tensor] | None, state: FitState,
            s: FitSettings, until: int, pixels: int, progress: bool = True, desc: str = "fit",
            stats_every: int = STATS_EVERY, shown_pixels: int | None = None) -> FitState:
    """Advance ``state`` to step ``until`` of its ``s.steps``-step schedule on ``s.batch``
    frames a step (all of them when ``s.batch`` is None or at least their number).

    ``frames`` is ``[n, 3, Hp, Wp]`` (padded) on the fit's device, ``pixels`` the unpadded
    pixel count of the GOP (the rate's denominator). Nothing inside a step waits for the
    device; the progress bar reads the PSNR and rate every ``stats_every`` steps, the rate in
    bits per ``shown_pixels`` (default ``pixels``; the encoder passes the video's pixels, so
    a fit at a smaller coded size shows the bpp the summary line will print).
    """
    n = frames.shape[0]
    dev = frames.device
    last: dict[str, Tensor] = {}

    def distortion(weights: dict[str, Tensor], step: int) -> Tensor:
        if s.batch is not None and n > s.batch:
            idx = torch.randperm(n, generator=state.gen, device=dev)[: s.batch]
        else:
            idx = torch.arange(n, device=dev)
        last["target"] = target = frames[idx]
        last["pred"] = pred = functional_call(model, weights, (frame_times(idx, n),))
        return state.distortion(pred, target, s)

    bar = tqdm(total=max(until - state.step, 0), desc=desc, disable=not progress or until <= state.step,
               leave=False, unit="step")
    smooth = None

    def after_step(step: int, rolled_back: bool) -> None:
        nonlocal smooth
        if rolled_back and progress:
            tqdm.write(f"{desc}: the fit diverged by step {step + 1}; back to its last good state "
                       f"at half the step size")
        if progress and step % stats_every == 0:
            p = float(psnr(last["pred"].detach(), last["target"]))
            smooth = p if smooth is None else 0.7 * smooth + 0.3 * p
            rate = state.rate
            coded = float(rate.coded_bits(rate.levels_flat(state.resid))) / (shown_pixels or pixels)  # the file's
            bar.set_postfix(batch_psnr_coded=f"{smooth:.2f}dB", bpp=f"{coded:.3f}")  # not the file's PSNR
        bar.update()

    try:
        return fit_steps(state, s, until, distortion, pixels, base, after_step)
    finally:
        bar.close()


def finish_fit(state: FitState) -> CodedGop:
    """The integer levels and float16 steps the bitstream stores."""
    names = state.rate.names
    steps, levels = [], []
    for k, r in state.residuals().items():
        step = np.float16(state.rate.step_value(k))
        lv = torch.round(r.float().cpu() / float(np.float32(step)))
        steps.append(step)
        levels.append(lv.to(torch.int64).numpy())
    return CodedGop(names, steps, levels)


def finish_fit_at_rate(state: FitState, target_bits: float) -> CodedGop:
    """:func:`finish_fit` with every tensor's step scaled by one common factor, chosen so that
    the levels' code length (each tensor at its best Laplace scale, :meth:`RateModel.coded_bits`)
    is the largest not above ``target_bits`` (``--bpp``'s last word on the rate).

    The rate weight steers the fit towards the target, but the rate of a short fit still moves
    after the weight does; rescaling the steps trades the remaining error on the fitted
    residuals at once, with the very count the file's size follows. The scan is a bisection on
    the log of the factor over [2^-12, 2^12] (levels stay within the format's ``MAX_LEVEL``).
    """
    rate = state.rate
    resid = state.resid.detach()
    base_steps = rate.steps().detach()

    def at(log_m: float) -> tuple[Tensor, Tensor]:
        st = (base_steps * math.exp(log_m)).clamp(min=F16_TINY, max=6e4).half().float()
        return st, torch.round(resid / st.index_select(0, rate.segment))

    def bits(log_m: float) -> float:
        lv = at(log_m)[1]
        if float(lv.abs().max()) > MAX_LEVEL:
            return math.inf
        return float(rate.coded_bits(lv))

    lo, hi = -12 * math.log(2.0), 12 * math.log(2.0)  # bits(lo) high, bits(hi) low
    if bits(0.0) <= target_bits:
        hi = 0.0
    else:
        lo = 0.0
    if bits(lo) <= target_bits:
        hi = lo
    for _ in range(40):
        if hi - lo < 1e-3:
            break
        mid = 0.5 * (lo + hi)
        if bits(mid) <= target_bits:
            hi = mid
        else:
            lo = mid
    st, lv = at(hi)
    levels = [v.to(torch.int64).cpu().numpy() for v in rate.unflatten(lv).values()]
    return CodedGop(rate.names, [np.float16(float(x)) for x in st.cpu()], levels)


def fit_gop(model: NeRV, frames: Tensor, base: dict[str, Tensor] | None, s: FitSettings,
            pixels: int, progress: bool = True, desc: str = "fit") -> CodedGop:
    """Fit one GOP from ``model``'s weights with one rate weight: the whole schedule."""
    state = start_fit(model, base, s)
    run_fit(model, frames, base, state, s, s.steps, pixels, progress, desc)
    return finish_fit(state)


def frames_to_tensor(frames: np.ndarray) -> Tensor:
    """uint8 ``[n, H, W, 3]`` -> float ``[n, 3, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
