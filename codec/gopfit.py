"""The GOP fit: one GOP's frames -> a fitted network per rung of the ladder.

The frames are brought to the coded size (:func:`coded_target`), the model is built from the
init, and each rung's fit runs (``codec.finetune``). Several rungs share the stable phase of
the schedule at the smallest rate weight, then each runs the decay phase with its own, when
that phase has at least ``MIN_SHARED_DECAY_STEPS`` steps; rungs the budget floor made equal
are fitted once; ``--bpp`` searches the rate weight instead (``codec.rate_control``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from codec.devices import pick_device
from codec.finetune import CodedGop, branch, decay_start, finish_fit, frames_to_tensor, run_fit, start_fit
from codec.plan import GopPlan
from codec.rate_control import fit_to_rate
from metanerv.latent import start_grid
from metanerv.model import build_model, downscale_frames, frame_times, pad_to_stride, prefilter_frames

# Rungs share a fit's stable phase only when the decay phase left to each is this long. At the
# presets' short fits (28-95 steps for 9-32 frames at medium) a 3-rung ladder sharing the
# stable phase at q7's lam wrote q3 at 5.5x the bytes of `-q 3` alone and 1.9 dB worse on
# carphone (29,815 B 19.16 dB vs 5,469 B 21.07 dB; benchmarks/results/ladder-short/);
# at rd-v2's 300 steps (decay 120) the shared ladder is the published curve.
MIN_SHARED_DECAY_STEPS = 100
# What a GOP coded at a smaller size is fitted to: the source box-averaged, moved this share of
# the way to the frame whose bicubic resize back to the source is closest to it
# (metanerv.model.prefilter_frames). On five train clips at `medium`, against the box average:
# the whole way -1.7 % BD-rate in PSNR, halfway -2.6 % (4/5 clips each; the sharper target pays
# at the top rungs and costs a little at the lowest); benchmarks/results/coded-target/.
PREFILTER_SHARE = 0.5


def coded_target(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The frames ``[n, 3, H, W]`` a GOP coded at ``height x width`` is fitted to (``PREFILTER_SHARE``)."""
    area = downscale_frames(frames, height, width)
    if PREFILTER_SHARE == 0.0 or tuple(frames.shape[-2:]) == (height, width):
        return area
    return area.lerp_(prefilter_frames(frames, height, width), PREFILTER_SHARE)


def fit_rungs(chunk: np.ndarray, gi: int, plan: GopPlan, *, progress: bool = False,
              label: str = "") -> dict[int, tuple[CodedGop, float, int]]:
    """Fit GOP ``gi`` (uint8 frames ``chunk``) once per rung of ``plan``: ``{quality: (levels
    and steps, final rate weight, rollbacks of the divergence guard)}``. The model and the fit
    are seeded with ``seed + gi``, so a GOP codes the same wherever and in whatever order it
    is fitted."""
    dev = pick_device(plan.options.device)
    n = chunk.shape[0]
    settings = plan.gop_settings(gi, n)
    pixels = n * plan.coded_width * plan.coded_height  # the fit's rate is per coded pixel
    shown = n * plan.width * plan.height  # the progress bar's bpp: the summary line's
    target = pad_to_stride(coded_target(frames_to_tensor(chunk), *plan.coded_hw),
                           plan.config.total_stride).to(dev)
    model = build_model(plan.config, plan.grid_hw, plan.init_tensors(), seed=plan.options.seed + gi).to(dev)
    if plan.latent is not None:  # the GOP's own starting grid instead of the init's
        with torch.no_grad():
            times = frame_times(range(n), n).to(dev)
            model.grid.copy_(start_grid(plan.latent.to(dev), target, times, model.grid))
    base_cpu = plan.base_tensors()
    base = {k: v.to(dev) for k, v in base_cpu.items()} if base_cpu else None
    desc = f"fit{label}"
    if plan.options.bpp:
        (q, s), = settings.items()
        s = replace(s, target_bpp=s.target_bpp / plan.coded_share)  # --bpp counts output pixels
        return {q: fit_to_rate(model, target, base, s, pixels, plan.header_bpp / plan.coded_share,
                               progress, desc, shown)}
    common = replace(next(iter(settings.values())), lam=min(s.lam for s in settings.values()))
    prefix = decay_start(common)
    shared = len(settings) > 1 and common.steps - prefix >= MIN_SHARED_DECAY_STEPS
    state = None
    if shared:
        state = start_fit(model, base, common)
        run_fit(model, target, base, state, common, prefix, pixels, progress, desc, shown_pixels=shown)
    out = {}
    for q, s in settings.items():
        twin = next((p for p in out if settings[p] == s), None)
        if twin is not None:  # rungs raised to the same budget floor: the same fit, fitted once
            out[q] = out[twin]
            continue
        if shared:  # branch off the shared stable phase with this rung's lam
            mine = branch(state)
            mine.lam = s.lam
        else:  # a fit of its own: the bytes of `nervc encode -q` at this rung
            mine = start_fit(model, base, s)
        run_fit(model, target, base, mine, s, s.steps, pixels, progress,
                desc + (f" q{q}" if len(settings) > 1 else ""), shown_pixels=shown)
        out[q] = (finish_fit(mine), mine.lam, mine.rollbacks)
    return out
