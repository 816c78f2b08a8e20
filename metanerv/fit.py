"""The rate-distortion fit: one implementation for the encoder and for meta-training.

The decode weights are ``base + step * round(r / step)`` (``base`` = the init's tensors for
delta coding, zero without an init); the residuals ``r``, the per-tensor steps and the Laplace
scales of :class:`metanerv.rate.RateModel` are trained together on
``distortion + lam * bits / pixels`` with a two-group Adam (``FitSettings.lr`` for the
residuals, ``rate_lr`` for the log steps and scales), the warmup-stable-decay schedule
(:func:`metanerv.schedule.wsd_lr`), per-step re-seeded rate noise, optional Meta-SGD step-size
multipliers and a divergence guard. :func:`new_fit` builds the state, :func:`fit_steps`
advances it; the distortion is the caller's: ``codec.finetune`` fits a GOP's frames (batches,
``--tune``), ``metanerv.maml.coded_adapt`` a meta-training task's loss. So improving the fit
improves both, and they cannot drift apart.

Nothing inside a step waits for the device: the rate noise comes from a generator on the fit's
device, and the guard reads back one number every ``GUARD_EVERY`` steps.

A fit can diverge: a burst of large gradients moves every weight at once and the tanh head
saturates, after which the fit does not come back within its budget (foreman, 64 frames, -q 5,
the c8-coded init: 22 -> 8 dB at step 730 of 1624, 9.8 dB at the end on one machine, 16.5 on
another). The guard (``FitState.guard``) returns such a fit to its last good state at half the
step size: 22.4 dB (the encoder's fit-stability measurements, cited in ``codec.finetune``).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from metanerv.losses import MSE_PRICE, reconstruction_loss
from metanerv.rate import RateModel, initial_step
from metanerv.schedule import wsd_lr

NOISE_SEED = 1_000_003  # step k's rate noise comes from seed * NOISE_SEED + k

# What the fit minimises besides the rate (``nervc encode --tune``), as the share of a PSNR term
# in a mix with the NeRV papers' 0.7 L1 + 0.3 (1 - SSIM):
# - the PSNR term is MSE_PRICE * MSE / m, m a running mean of the batches' MSE (detached): the
#   gradient of MSE_PRICE * ln(mean MSE), a constant price per dB of PSNR, the curve users compare;
# - "balanced" (default) mixes the two half and half: on five train clips at `medium` it bought
#   -14.5 % BD-rate in PSNR for +5.0 % in MS-SSIM against "ssim"; "psnr" alone -16.0 % and
#   +34.5 % (blur at low rates): the encoder's fit-loss measurements (``codec.finetune``).
MSE_SHARE: dict[str, float] = {"balanced": 0.5, "psnr": 1.0, "ssim": 0.0}
DISTORTIONS = tuple(MSE_SHARE)
DEFAULT_TUNE = "balanced"
# MSE_PRICE (metanerv.losses, shared with meta-training's --loss balanced) sets the log-MSE term
# against the ladder's rate weights: 0.04 moves about as much per dB near 25 dB as the L1 + SSIM
# loss does, so a rung keeps about its rate.
MSE_MEAN_DECAY = 0.95  # the running mean's weight on its past, per step
# Adam's moment decays: torch's default. A shorter second moment (0.99, which follows a burst of
# large gradients within ~100 steps instead of ~1000) kept foreman's -q 5 fit from collapsing,
# but cost +2.0 % BD-rate on three train clips at `medium` (0/3 better); the guard below prevents
# the collapse for nothing (fit-stability, ``codec.finetune``).
ADAM_BETAS = (0.9, 0.999)
# The divergence guard: every GUARD_EVERY steps, at the last step of the stable phase (where
# ladder rungs branch off) and at the last step, the fit reads back the mean MSE of the batches
# since the last check (the loop's one host read) and compares it with the previous window at
# the same rate weight. Within GUARD_KEEP_DB, the window vouches for the state of the previous
# check, which is kept; more than GUARD_DB worse, the fit returns to the kept state and goes on
# at half the step size. A fit that never diverges runs as without it. Windows of a healthy fit
# differ by ~1 dB at the peak step size, and a new rate weight moves them ~1 dB per window
# (a rung branching off the shared phase); the collapses seen jumped 5-10 dB in one window.
GUARD_EVERY = 50
GUARD_KEEP_DB = 1.0
GUARD_DB = 3.0
# Where a short fit's quantization steps start. The steps start at rate.STEP_FRACTION (1/16) of
# each tensor's spread and are learned in log space; fits at `medium` end 10-40x coarser (median
# over tensors; 24_makeup, 32 frames: 43x / 31x / 11x at -q 3 / 5 / 7 in 550 / 550 / 397 steps),
# travelling about ln 2 per 100 steps. A shorter fit cannot get there: its steps stay fine, each
# Adam update moves weights by whole levels, and the rate noise walks thousands of weights off
# zero (bytes without picture), or at a large rate weight per pixel nothing is worth a level and
# the fit stays at the init: a 64x48 red/blue/grey clip of 16 frames at -q 5 (29 steps at
# `medium`) decoded grey-purple at 8.6 dB, and stayed there at 200 steps (8.7 dB). So a fit of
# fewer than SHORT_FIT_STEPS steps starts with its steps doubled per STEP_DOUBLING_STEPS steps it
# is short, at most MAX_START_COARSEN times: that clip at 212 steps (codec.presets.MIN_BUDGET_MP)
# 33.4 dB in a 453 B file; 32 frames of three train clips at `ultrafast` (38-68 steps) +0.8 to
# +1.5 dB at equal bytes (24_makeup -q 3 / 5: 6,603 / 13,767 B 18.46 / 19.15 dB -> 4,793 /
# 10,843 B 20.15 / 20.26 dB), `superfast` likewise. At `medium` (397-977 steps on them) starting
# 4-8x coarser was level to +9.7 % BD-rate, so fits of SHORT_FIT_STEPS or more start where they
# did (docs/experiments.md, 2026-12-08). Meta-training's coded inner loop (maml.coded_adapt, 10-40
# steps) keeps the fine start unless asked (FitSettings.coarse_start): an init trained through
# coarse inner fits has not been measured.
SHORT_FIT_STEPS = 400
STEP_DOUBLING_STEPS = 100
MAX_START_COARSEN = 8.0


def start_step_factor(steps: int) -> float:
    """How much coarser than :func:`metanerv.rate.initial_step`'s fraction a fit of ``steps``
    steps starts its quantization steps (1 from ``SHORT_FIT_STEPS`` up)."""
    short = max(SHORT_FIT_STEPS - int(steps), 0)
    return min(2.0 ** (short / STEP_DOUBLING_STEPS), MAX_START_COARSEN)


@dataclass(kw_only=True)
class FitSettings:
    """One fit's schedule and objective. ``steps``, ``lr`` and ``batch`` have no default: the
    encoder takes them from its preset (``codec.presets``) or the caller, meta-training's coded
    inner loop from its options."""

    steps: int
    lr: float  # peak Adam step of the residuals
    batch: int | None  # frames per step of a GOP fit (None: all; a meta-training task batches itself)
    rate_lr: float = 2e-2  # peak Adam step of log steps and log scales
    distortion: str = DEFAULT_TUNE  # one of DISTORTIONS
    l1_weight: float = 0.7  # of the "ssim" distortion
    lam: float = 0.3  # bits are weighed as lam * bits per pixel of the GOP
    decay_fraction: float = 0.4  # the last part of the schedule, where the step size decays
    target_bpp: float | None = None  # --bpp: the encoder searches lam for this rate (codec.rate_control)
    budget_floor: bool = False  # lam is a -q rung's: raised to codec.ladder.lam_floor of the fit's budget
    seed: int = 0
    compile: bool = False  # torch.compile the loss (CPU: ~40 s per frame size; pays off at large frames)
    lr_scales: Mapping[str, float] | None = None  # Meta-SGD: per-tensor multipliers of every Adam update
    coarse_start: bool = True  # a short fit starts its steps coarser (start_step_factor); meta-training's off


@dataclass
class FitState:
    """Everything a fit carries between steps (copy it with :func:`branch`)."""

    resid: Tensor  # every decode tensor's residual in one flat leaf (``rate.unflatten`` views)
    rate: RateModel
    opt: torch.optim.Optimizer
    gen: torch.Generator  # batch indices, on the fit's device
    noise: torch.Generator  # the rate's uniform noise (re-seeded every step), on the fit's device
    lam: float = 0.3
    step: int = 0
    lr_scale: Tensor | None = None  # per element, from FitSettings.lr_scales (None: plain Adam)
    mse_mean: Tensor | None = None  # the PSNR term's running mean of the batch MSE (--tune psnr, balanced)
    watch: Tensor | None = None  # the guard's sum of the batch MSE since its last check (every tune)
    watched: int = 0  # batches in ``watch``
    lr_mult: float = 1.0  # halved by each rollback of the divergence guard
    rollbacks: int = 0  # how often the guard rolled the fit back
    guard_last: float | None = None  # the previous check's window mean MSE, at rate weight guard_lam
    guard_lam: float | None = None
    kept: dict | None = None  # the guard's copy of a state a good check has vouched for (GUARD_EVERY)
    pending: dict | None = None  # the state at the last good check, kept once the next check is good

    def observe(self, value: Tensor) -> Tensor:
        """Add one batch's distortion (detached, at least 1e-12) to the guard's window."""
        now = value.detach().clamp_min(1e-12)
        self.watch = now.clone() if self.watch is None else self.watch.add_(now)
        self.watched += 1
        return now

    def distortion(self, pred: Tensor, target: Tensor, s: FitSettings) -> Tensor:
        """The fit's distortion term of one batch of frames (``FitSettings.distortion``); the
        guard watches its MSE."""
        share = MSE_SHARE[s.distortion]
        l1_ssim = (reconstruction_loss(pred, target, s.l1_weight, fused=True, compiled=s.compile)
                   if share < 1.0 else None)
        mse = (pred - target).square().mean() if share > 0.0 else (pred.detach() - target).square().mean()
        now = self.observe(mse)
        if share == 0.0:
            return l1_ssim
        self.mse_mean = now if self.mse_mean is None else self.mse_mean.mul(MSE_MEAN_DECAY).add_(
            now, alpha=1.0 - MSE_MEAN_DECAY)
        term = MSE_PRICE * mse / self.mse_mean
        return term if l1_ssim is None else share * term + (1.0 - share) * l1_ssim

    def _snapshot(self) -> dict:
        return {"resid": self.resid.detach().clone(), "rate": copy.deepcopy(self.rate.state_dict()),
                "opt": copy.deepcopy(self.opt.state_dict()),
                "mse_mean": None if self.mse_mean is None else self.mse_mean.clone()}

    def guard(self) -> bool:
        """The divergence check (:func:`guard_step`): keep a copy of a good state, or return
        to it when the batches' MSE diverged. True when it rolled back."""
        if self.watch is None or self.watched == 0:
            return False
        now = float(self.watch) / self.watched  # the loop's one host read, at a guard step
        self.watch, self.watched = None, 0
        if self.guard_lam != self.lam:  # a new rate weight (a rung's branch): this window mixes
            self.guard_lam, self.guard_last, self.pending = self.lam, None, None  # two; start over
            return False
        if self.guard_last is None:
            self.guard_last, self.pending = now, self._snapshot()
            return False
        diverged = not math.isfinite(now) or now > self.guard_last * 10 ** (GUARD_DB / 10)
        if not diverged:
            # The window measured the batches drawn from the state of the previous check on, not
            # the one its last update made: that one waits for the next window.
            if now <= self.guard_last * 10 ** (GUARD_KEEP_DB / 10):
                self.kept, self.pending = self.pending or self.kept, self._snapshot()
            else:
                self.pending = None
            self.guard_last = now
            return False
        if self.kept is None:
            return False
        self.pending = None
        with torch.no_grad():
            self.resid.copy_(self.kept["resid"])
        self.rate.load_state_dict(self.kept["rate"])
        self.opt.load_state_dict(copy.deepcopy(self.kept["opt"]))
        self.mse_mean = None if self.kept["mse_mean"] is None else self.kept["mse_mean"].clone()
        self.lr_mult *= 0.5
        self.rollbacks += 1
        return True

    def residuals(self) -> dict[str, Tensor]:
        return self.rate.unflatten(self.resid.detach())


def decay_start(s: FitSettings) -> int:
    """First step of the decay phase (ladder rungs branch off here)."""
    return int(round(s.steps * (1.0 - s.decay_fraction)))


def step_size(step: int, s: FitSettings) -> float:
    """The schedule's multiplier of the peak step sizes at ``step`` (:func:`wsd_lr` with a
    warmup of a twentieth of the steps and the decay from :func:`decay_start`)."""
    return wsd_lr(step, s.steps, 1.0, warmup=max(s.steps // 20, 1), decay_from=decay_start(s))


def guard_step(step: int, s: FitSettings) -> bool:
    """Whether the divergence guard checks the fit once ``step`` steps are done: every
    ``GUARD_EVERY``, at the branch point (a rung must not inherit a diverged shared phase) and
    at the end (a fit never ends diverged). A function of the schedule alone, so a fit run in
    pieces checks where the whole run does."""
    return step % GUARD_EVERY == 0 or step == decay_start(s) or step == s.steps


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def new_fit(weights: Mapping[str, Tensor], base: Mapping[str, Tensor] | None, s: FitSettings) -> FitState:
    """A fit of the tensors ``weights`` (name -> starting value, in the decoder's order): their
    residuals start at ``weights - base`` (zero when they start at the base), their steps at
    :func:`metanerv.rate.initial_step` of the base's tensor (of the weight's without a base),
    coarser for a short fit (:func:`start_step_factor` of ``s.steps``, unless ``s.coarse_start``
    is off)."""
    names = list(weights)
    dev = weights[names[0]].device
    resid = {}
    for k in names:
        w = weights[k].detach()
        resid[k] = w - base[k].to(dev) if base is not None else w
    coarsen = start_step_factor(s.steps) if s.coarse_start else 1.0
    steps = {k: initial_step(base[k] if base is not None else None, weights[k].detach(), coarsen) for k in names}
    if s.distortion not in DISTORTIONS:
        raise ValueError(f"distortion {s.distortion!r} not in {DISTORTIONS}")
    rate = RateModel(resid, steps)
    flat = rate.flatten(resid).clone().requires_grad_(True)
    fused = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.Adam([{"params": [flat], "lr": s.lr},
                            {"params": list(rate.parameters()), "lr": s.rate_lr}], betas=ADAM_BETAS, **fused)
    scale = None
    if s.lr_scales:
        per_tensor = torch.tensor([float(s.lr_scales.get(k, 1.0)) for k in names], device=dev)
        scale = per_tensor.index_select(0, rate.segment)
    return FitState(flat, rate, opt, _generator(dev, s.seed), _generator(dev, s.seed * NOISE_SEED), lam=s.lam,
                    lr_scale=scale, guard_lam=s.lam)


# (weights of the fitted tensors, step) -> the step's distortion; it feeds the guard
# (FitState.observe or FitState.distortion)
Distortion = Callable[[dict[str, Tensor], int], Tensor]


def fit_steps(state: FitState, s: FitSettings, until: int, distortion: Distortion, pixels: int,
              base: Mapping[str, Tensor] | None = None,
              after_step: Callable[[int, bool], None] | None = None) -> FitState:
    """Advance ``state`` to step ``until`` of the ``s.steps``-step schedule on
    ``distortion(weights, step) + lam * bits / pixels``, ``weights`` being ``base`` plus the
    quantized residuals. ``after_step(step, rolled_back)`` runs after each step's update and
    guard check (the encoder's progress bar)."""
    rate = state.rate
    dev = state.resid.device
    base_flat = rate.flatten({k: base[k].to(dev) for k in rate.names}) if base is not None else None
    for step in range(state.step, until):
        f = step_size(step, s)
        state.opt.param_groups[0]["lr"] = s.lr * f * state.lr_mult
        state.opt.param_groups[1]["lr"] = s.rate_lr * f * state.lr_mult
        # Seeded by step (a dedicated generator, not the global one): the same noise whatever
        # came before, so a branched rung sees what a lone fit would.
        state.noise.manual_seed(s.seed * NOISE_SEED + step)
        noise = torch.rand(state.resid.shape, generator=state.noise, device=dev).sub_(0.5)
        q, bits = rate.quantize_flat(state.resid, noise)
        weights = rate.unflatten(base_flat + q if base_flat is not None else q)
        loss = distortion(weights, step) + state.lam * bits / pixels
        state.opt.zero_grad(set_to_none=True)
        loss.backward()
        if state.lr_scale is None:
            state.opt.step()
        else:  # Meta-SGD's learned per-tensor step sizes, on top of Adam's own scaling
            with torch.no_grad():
                prev = state.resid.detach().clone()
                state.opt.step()
                state.resid.sub_(prev).mul_(state.lr_scale).add_(prev)
        rolled = guard_step(step + 1, s) and state.guard()
        if after_step is not None:
            after_step(step, rolled)
    state.step = until
    return state


def branch(state: FitState) -> FitState:
    """An independent copy of a fit (tensors, optimizer moments, generators) to continue apart."""
    memo = {}
    for g in (state.gen, state.noise):  # copied by state: a device generator need not deep-copy
        memo[id(g)] = torch.Generator(device=g.device)
        memo[id(g)].set_state(g.get_state())
    return copy.deepcopy(state, memo)
