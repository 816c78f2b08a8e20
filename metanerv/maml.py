"""Gradient-based meta-learning on parameter dictionaries (MAML, first-order MAML, Meta-SGD, Reptile).

Everything here is functional: parameters are ``dict[str, Tensor]`` and a task is a loss
function of such a dict and of the inner step index (so each step can see another batch of the
task's frames), built with ``torch.func.functional_call``. The same code serves any module and
never mutates the meta-parameters it adapts from (the ``clone`` semantics of learn2learn's
``MAML``).

* ``adapt`` runs the inner loop: ``k`` SGD (or Adam) steps whose step sizes are fixed or learned
  per parameter tensor (Meta-SGD; the learned values are stored as log step sizes so they stay
  positive). With ``first_order=False`` the inner gradients are part of the graph, so the query
  loss differentiates through every inner step (second-order MAML); with ``first_order=True``
  the inner gradients are constants and the meta-gradient is the query gradient at the adapted
  weights (FOMAML). Learned step sizes get gradients in both modes.
* ``reptile_adapt`` runs detached inner Adam steps and ``reptile_grad`` turns the distance to the
  adapted weights into a pseudo-gradient, so Reptile can share the outer optimizer.
* ``coded_adapt`` is the encoder's fit as an inner loop: quantized residuals from the init, their
  learned steps and Laplace scales (``metanerv.rate.RateModel``), ``distortion + lam * bits /
  pixels``, Adam with optional per-tensor step-size multipliers. It returns the quantized
  residuals, the move the encoder would store, for Reptile or first-order MAML to learn from.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor

from metanerv.fit import FitSettings, fit_steps, new_fit

Params = dict[str, Tensor]
LossFn = Callable[[Params, int], Tensor]  # (params, inner step) -> loss; the step picks a batch

INNER_OPTS = ("sgd", "adam")


def clone_params(params: Mapping[str, Tensor]) -> Params:
    """Graph-connected copies: gradients of anything computed from them reach ``params``."""
    return {k: v.clone() for k, v in params.items()}


def detached_params(params: Mapping[str, Tensor], requires_grad: bool = True) -> Params:
    """Independent leaf copies (what a first-order method differentiates)."""
    return {k: v.detach().clone().requires_grad_(requires_grad) for k, v in params.items()}


def init_log_lrs(names: Iterable[str], lr: float, device: torch.device | str | None = None) -> Params:
    """One learnable log step size per parameter tensor (Meta-SGD, per-tensor variant)."""
    if lr <= 0:
        raise ValueError(f"inner step size must be positive, got {lr}")
    return {n: torch.full((), math.log(lr), device=device, requires_grad=True) for n in names}


def step_sizes(lrs: Mapping[str, Tensor] | float, names: Iterable[str], learned: bool) -> dict:
    """Per-tensor step sizes: ``exp(log_lr)`` when learned, else the fixed float for every name."""
    if isinstance(lrs, (int, float)):
        return {n: float(lrs) for n in names}
    return {n: (lrs[n].exp() if learned else float(lrs[n].detach().exp())) for n in names}


def adapt(loss_fn: LossFn, params: Mapping[str, Tensor], steps: int,
          lrs: Mapping[str, Tensor] | float, first_order: bool = False,
          opt: str = "sgd", betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          learn_lrs: bool = True) -> Params:
    """Inner loop: ``steps`` updates of ``params`` on ``loss_fn``; returns new tensors.

    ``lrs`` is either a float (fixed step size) or log step sizes per name (``init_log_lrs``);
    with ``learn_lrs`` the result depends differentiably on them. ``opt="adam"`` uses Adam's
    bias-corrected update (differentiable too, ``sqrt(v + eps^2)`` keeps its derivative finite
    at zero gradients). Parameters a loss does not use keep their values.
    """
    if opt not in INNER_OPTS:
        raise ValueError(f"inner optimizer must be one of {INNER_OPTS}, got {opt!r}")
    fast = clone_params(params)
    names = list(fast)
    sizes = step_sizes(lrs, names, learn_lrs)
    m: dict[str, Tensor] = {}
    v: dict[str, Tensor] = {}
    b1, b2 = betas
    for k in range(steps):
        loss = loss_fn(fast, k)
        grads = torch.autograd.grad(loss, [fast[n] for n in names], create_graph=not first_order,
                                    allow_unused=True)
        new: Params = {}
        for n, g in zip(names, grads):
            if g is None:
                new[n] = fast[n]
                continue
            if first_order:
                g = g.detach()
            if opt == "sgd":
                update = g
            else:
                m[n] = b1 * m[n] + (1 - b1) * g if n in m else (1 - b1) * g
                v[n] = b2 * v[n] + (1 - b2) * g * g if n in v else (1 - b2) * g * g
                mhat = m[n] / (1 - b1 ** (k + 1))
                vhat = v[n] / (1 - b2 ** (k + 1))
                update = mhat / torch.sqrt(vhat + eps * eps)
            new[n] = fast[n] - sizes[n] * update
        fast = new
    return fast


def reptile_adapt(loss_fn: LossFn, params: Mapping[str, Tensor], steps: int, lr: float,
                  betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Params:
    """Reptile's inner loop: ``steps`` Adam steps from detached copies; returns detached weights."""
    fast = adapt(loss_fn, detached_params(params), steps, lr, first_order=True, opt="adam",
                 betas=betas, eps=eps, learn_lrs=False)
    return {k: v.detach() for k, v in fast.items()}


def reptile_grad(task_params: Mapping[str, Tensor], adapted: Mapping[str, Tensor]) -> Tensor:
    """Surrogate loss ``0.5 * ||task_params - adapted||^2`` whose gradient is Reptile's direction.

    ``task_params`` may be a differentiable view of the meta-parameters (e.g. a resampled grid),
    so ``backward()`` maps the move ``theta - phi`` back through that view.
    """
    total = None
    for k, v in task_params.items():
        d = 0.5 * (v - adapted[k].detach()).pow(2).sum()
        total = d if total is None else total + d
    if total is None:
        raise ValueError("no parameters")
    return total


def coded_adapt(loss_fn: LossFn, start: Mapping[str, Tensor], names: Iterable[str], steps: int,
                lr: float, lam: float, pixels: int, rate_lr: float | None = None,
                lr_scales: Mapping[str, float] | None = None, seed: int = 0,
                decay_fraction: float = 0.4, coarse_start: bool = False) -> Params:
    """The encoder's rate-distortion fit from ``start`` (detached); returns ``step * round(r / step)``
    of every tensor of ``names``: what the file would add to ``start``.

    It is the encoder's fit (:mod:`metanerv.fit`, which ``codec.finetune`` runs on a GOP), with
    ``loss_fn`` as the distortion: the residuals ``r`` start at zero with steps of
    :func:`metanerv.rate.initial_step` of ``start``; every step adds the quantized residuals to
    ``start``, prices them with uniform-noise bits and minimises ``loss_fn + lam * bits / pixels``
    with Adam (``lr`` for the residuals, ``rate_lr`` for the log steps and scales, default the
    encoder's ``FitSettings.rate_lr``), the encoder's schedule (``wsd_lr``: its last
    ``decay_fraction`` a cosine to zero), rate noise and divergence guard (on ``loss_fn``'s
    value); ``lr_scales`` multiplies each tensor's Adam update (the init's Meta-SGD step sizes,
    as the encoder uses them). ``coarse_start``: start the steps coarser as the encoder's short
    fits do (``metanerv.fit.start_step_factor``); off by default, as meta-training ran until
    2026-12-08.
    """
    names = list(names)
    base = {k: v.detach() for k, v in start.items()}
    fitted = {k: base[k] for k in names}
    s = FitSettings(steps=steps, lr=lr, batch=None, lam=lam, seed=seed, lr_scales=lr_scales,
                    decay_fraction=decay_fraction, coarse_start=coarse_start,
                    **({} if rate_lr is None else {"rate_lr": rate_lr}))
    state = new_fit(fitted, fitted, s)

    def distortion(weights: Params, k: int) -> Tensor:
        loss = loss_fn({n: weights.get(n, v) for n, v in base.items()}, k)
        state.observe(loss)
        return loss

    fit_steps(state, s, steps, distortion, pixels, fitted)
    with torch.no_grad():
        return {k: v.detach().clone() for k, v in state.rate.unflatten(state.rate.quantize_flat(state.resid)[0]).items()}


def clip_grad_norm_(tensors: Iterable[Tensor], max_norm: float) -> float:
    """Scale the ``.grad`` of ``tensors`` so their joint L2 norm is at most ``max_norm``; returns the norm."""
    grads = [t.grad for t in tensors if t.grad is not None]
    if not grads:
        return 0.0
    norm = torch.sqrt(sum(g.detach().pow(2).sum() for g in grads))
    if max_norm > 0 and math.isfinite(max_norm):
        scale = (max_norm / (norm + 1e-12)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale)
    return float(norm)
