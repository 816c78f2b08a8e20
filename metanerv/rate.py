"""Rate-aware quantization: learned step sizes and a differentiable bit count.

Each decode tensor ``w`` is stored as ``base + step * k`` with integer levels ``k`` (``base`` =
the init's tensor for delta coding, zero without an init). During fitting the residual
``r = w - base`` is a free tensor; its step is learned (``log_step``, per tensor), and so is the
scale of the zero-mean discretized Laplace that codes its levels (``log_scale``, in units of the
step). The loss is ``distortion + lambda * bits / pixels``:

* distortion sees ``base + step * round(r / step)`` (straight-through rounding, with the step
  rounded to float16 as the bitstream stores it), so the encoder's picture is the decoder's;
* rate is ``sum -log2 P(r / step + u)`` with uniform noise ``u`` in [-1/2, 1/2) (the usual
  relaxation of rounding for a density), where ``P(x)`` is the Laplace mass of
  ``[x - 1/2, x + 1/2]``: the same model :mod:`codec.entropy` codes the levels with.

After fitting, :func:`codec.entropy.fit_laplace` picks the transmitted (fixed-point) scale that
minimises the real code length of the final levels, so the estimate the encoder reports is
the size of the file it writes.

It lives in ``metanerv/`` (it was ``codec/rate.py``) because meta-training's coded inner loop
(:func:`metanerv.maml.coded_adapt`, ``nervc meta-train --inner-rate``) fits the same objective
as the encoder, and ``metanerv/`` imports nothing from ``codec/``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

LOG2E = 1.0 / math.log(2.0)
INIT_SCALE = 2.0  # starting Laplace scale, in steps (0.5 was 0.6 dB worse at 300 steps on carphone)
STEP_FRACTION = 1 / 16  # starting step, as a fraction of the tensor's spread
F16_TINY = 2.0 ** -14  # smallest normal float16: steps never go below it
SCALE_GRID = torch.logspace(math.log10(0.02), 4.0, 193, dtype=torch.float64)  # Laplace scales, in steps


def laplace_bits(x: Tensor, scale: Tensor) -> Tensor:
    """Bits of ``x`` (in step units) under a zero-mean Laplace of ``scale``, binned to width 1.

    ``P(x) = F(x + 1/2) - F(x - 1/2)``; for ``|x| >= 1/2`` that is
    ``1/2 exp(-(|x| - 1/2)/b) (1 - exp(-1/b))``, else ``1 - 1/2 (exp(-(1/2 - x)/b) + exp(-(1/2 + x)/b))``.
    Written in log space so gradients stay finite far in the tails.
    """
    b = scale
    a = x.abs()
    # Each branch sees only its own domain: torch.where differentiates both, and the inner
    # formula overflows (inf * 0 = NaN gradients) far in the tails.
    a_t, a_i = a.clamp(min=0.5), a.clamp(max=0.5)
    tail = math.log(0.5) - (a_t - 0.5) / b + torch.log(-torch.expm1(-1.0 / b))
    inner = torch.log((1.0 - 0.5 * (torch.exp(-(0.5 - a_i) / b) + torch.exp(-(0.5 + a_i) / b))).clamp_min(1e-12))
    logp = torch.where(a >= 0.5, tail, inner)
    return -logp * LOG2E


def round_ste(x: Tensor) -> Tensor:
    return x + (torch.round(x) - x).detach()


def f16_ste(x: Tensor) -> Tensor:
    """Round to the nearest float16 in the forward pass, identity gradient."""
    return x + (x.detach().to(torch.float16).to(x.dtype) - x.detach())


class RateModel(torch.nn.Module):
    """Per-tensor learned step (``log_step``) and Laplace scale (``log_scale``, in steps).

    The fit keeps every residual in one flat vector (the tensors of ``residuals`` in order):
    the quantizer and the bit count are then a few whole-vector operations with each element's
    step and scale gathered from the per-tensor parameters, not a graph per tensor.
    ``quantized`` and ``bits`` take a dict of tensors as well.
    """

    def __init__(self, residuals: dict[str, Tensor], init_steps: dict[str, float],
                 init_scale: float | None = None) -> None:
        super().__init__()
        self.names = list(residuals)
        self.shapes = [tuple(r.shape) for r in residuals.values()]
        self.sizes = [r.numel() for r in residuals.values()]
        dev = next(iter(residuals.values())).device
        self.log_step = torch.nn.Parameter(
            torch.tensor([math.log(init_steps[k]) for k in self.names], device=dev))
        self.log_scale = torch.nn.Parameter(
            torch.full((len(self.names),), math.log(init_scale or INIT_SCALE), device=dev))
        segment = torch.repeat_interleave(torch.arange(len(self.names)), torch.tensor(self.sizes))
        self.register_buffer("segment", segment.to(dev), persistent=False)  # tensor of each element

    def steps(self) -> Tensor:
        """Every tensor's step as the bitstream will hold it: float16, at least the smallest normal."""
        return f16_ste(self.log_step.exp().clamp(min=F16_TINY, max=6e4))

    def scales(self) -> Tensor:
        return self.log_scale.exp().clamp(min=0.02, max=1e4)

    def step(self, name: str) -> Tensor:
        return self.steps()[self.names.index(name)]

    def scale(self, name: str) -> Tensor:
        return self.scales()[self.names.index(name)]

    def flatten(self, tensors: dict[str, Tensor]) -> Tensor:
        """One vector of the tensors of ``self.names``, in order."""
        return torch.cat([tensors[k].reshape(-1) for k in self.names])

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Views of ``flat`` shaped as the tensors (gradients flow back into ``flat``)."""
        return {k: v.view(shape) for k, v, shape in zip(self.names, flat.split(self.sizes), self.shapes)}

    def quantize_flat(self, flat: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(step * round(flat / step), bits)`` of a flat residual vector.

        ``noise`` (uniform in [-1/2, 1/2), one per element) relaxes the rounding for the bit
        count; without it the bits are those of the rounded levels (what the file holds).
        """
        st = self.steps().index_select(0, self.segment)
        x = flat / st
        levels = round_ste(x)
        bits = laplace_bits(x + noise if noise is not None else levels,
                            self.scales().index_select(0, self.segment)).sum()
        return levels * st, bits

    def levels_flat(self, flat: Tensor) -> Tensor:
        """The integer levels (as floats) of a flat residual vector: ``round(flat / step)``."""
        return torch.round(flat.detach() / self.steps().detach().index_select(0, self.segment))

    def quantized(self, residuals: dict[str, Tensor]) -> dict[str, Tensor]:
        """``step * round(r / step)`` per tensor: what the decoder will add to the base."""
        return self.unflatten(self.quantize_flat(self.flatten(residuals))[0])

    def bits(self, residuals: dict[str, Tensor], noise: bool = True,
             generator: torch.Generator | None = None) -> Tensor:
        """Differentiable estimate of the coded bits of every level."""
        flat = self.flatten(residuals)
        u = (torch.rand(flat.shape, generator=generator, device=flat.device, dtype=flat.dtype) - 0.5
             if noise else None)
        return self.quantize_flat(flat, u)[1]

    def step_value(self, name: str) -> float:
        return float(self.step(name).detach())

    def largest_levels(self, levels: Tensor) -> list[int]:
        """Per tensor its largest ``|level|`` (``K``: what its record in the file holds)."""
        return [int(k) for k in self._level_stats(levels)[3].tolist()]

    def _level_stats(self, levels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per tensor (float64): zero levels, non-zero levels, the sum of ``|k| - 1`` over the
        non-zero ones, and the largest ``|k|`` (``K``): all the code length of a zero-mean
        discretized Laplace truncated to ``[-K, K]`` depends on."""
        a = levels.detach().abs().double()
        nz = torch.zeros(len(self.names), dtype=torch.float64, device=a.device)
        nz.index_add_(0, self.segment, (a > 0).double())
        tot = torch.zeros_like(nz).index_add_(0, self.segment, a)
        big = torch.zeros_like(nz).scatter_reduce_(0, self.segment, a, reduce="amax")
        n = torch.tensor(self.sizes, dtype=torch.float64, device=a.device)
        return n - nz, nz, tot - nz, big

    def coded_bits(self, levels: Tensor) -> Tensor:
        """Bits of integer ``levels`` (flat) when every tensor gets its best scale (on a grid of
        :data:`SCALE_GRID` values, as :func:`codec.entropy.fit_laplace` picks the one it sends):
        the size of the payload the file will hold (within the integer table's rounding), not
        the estimate under the learned scales, which lag the levels in a short fit.

        The file's table covers only ``[-K, K]`` (``K`` = the tensor's largest ``|k|``), so the
        Laplace's mass is renormalised over that range: ``1 - r^(2K+1)`` in all. Without that,
        tensors whose levels are dense and small (``K`` of 2-6, most of them non-zero: early
        fits) were counted up to 4 % above what the file spends."""
        n0, nz, m1, big = self._level_stats(levels)
        r = torch.exp(-0.5 / SCALE_GRID.to(levels.device))[None, :]  # P(0) = 1 - r
        bits = -(n0[:, None] * torch.log2(1 - r) + nz[:, None] * torch.log2(0.5 * r * (1 - r * r))
                 + m1[:, None] * torch.log2(r * r))
        mass = 1 - r.pow(2 * big[:, None] + 1)  # the table's total over [-K, K]
        bits = bits + (n0 + nz)[:, None] * torch.log2(mass)
        bits = torch.where(nz[:, None] > 0, bits, torch.zeros_like(bits))  # all-zero: K = 0, no bits
        return bits.min(dim=1).values.sum()


def initial_step(base: Tensor | None, residual: Tensor, coarsen: float = 1.0) -> float:
    """A starting step: a fraction of the tensor's spread (init's when delta coding), times
    ``coarsen`` (a short fit starts coarser: :func:`metanerv.fit.start_step_factor`)."""
    ref = base if base is not None and base.numel() > 1 else residual
    spread = float(ref.detach().float().std()) if ref.numel() > 1 else float(ref.detach().abs().max())
    if not math.isfinite(spread) or spread <= 0:
        spread = 0.05
    return max(spread * STEP_FRACTION * coarsen, F16_TINY)
