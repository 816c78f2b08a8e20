"""Rate control: ``--bpp``, a search over the fit's rate weight that lands on a target rate.

:func:`fit_to_rate` runs the stable phase of the schedule once, at :func:`rate_prior`'s guess of
the weight, then decay branches from it at the weights :func:`next_rate_weight` steers to, and
keeps the branch closest to the target (its steps coarsened onto it when above).
"""
from __future__ import annotations

import math
from dataclasses import replace

from bitstreams.format import section_overhead_bytes
from codec.finetune import (CodedGop, FitSettings, FitState, branch, decay_start, finish_fit, finish_fit_at_rate,
                            run_fit, start_fit)
from metanerv.model import decode_param_names

# --bpp's search (fit_to_rate): a fit at the default preset with a fixed lam spends about
# RATE_PRIOR_C * lam ** -RATE_SLOPE bits of levels per coded pixel (single-rung `medium` encodes
# of five train/ clips, -q 1..5: s.d. 0.15 in log; a static clip sits 4-7x below it, so the
# branches correct it; benchmarks/results/rate-prior/).
RATE_PRIOR_C = 0.034
RATE_SLOPE = 0.92
RATE_TOLERANCE = 0.1  # a branch this close to the target ends the search
RATE_BRANCHES = 3  # decay branches the search may try from the one stable phase
RATE_SLOPE_BOUNDS = (0.3, 2.0)  # a slope measured between two branches, clamped to these


def rate_prior(levels_bpp: float) -> float:
    """The rate weight expected to land a fit at ``levels_bpp`` bits of levels per coded pixel."""
    return min(max((RATE_PRIOR_C / max(levels_bpp, 1e-9)) ** (1.0 / RATE_SLOPE), 1e-4), 1e4)


def next_rate_weight(tried: list[tuple[float, float]], goal: float) -> float:
    """The rate weight for the next branch of ``fit_to_rate`` from the ``(lam, bits)`` tried so
    far: along the prior's slope from one point, along the slope the last two measured (the
    secant in log-log, clamped to ``RATE_SLOPE_BOUNDS``) from more."""
    lam, bits = tried[-1]
    slope = RATE_SLOPE
    if len(tried) > 1:
        (la, ba), (lb, bb) = tried[-2], tried[-1]
        if la != lb and ba > 0 and bb > 0 and ba != bb:
            slope = -math.log(bb / ba) / math.log(lb / la)
            slope = min(max(slope, RATE_SLOPE_BOUNDS[0]), RATE_SLOPE_BOUNDS[1])
    return lam * (max(bits, 1.0) / max(goal, 1.0)) ** (1.0 / slope)



def fit_to_rate(model, target, base, s: FitSettings, pixels: int, header_bpp: float,
                progress: bool, desc: str, shown_pixels: int | None = None) -> tuple[CodedGop, float, int]:
    """``--bpp``: a search over the rate weight on one shared fit, then a step rescale.

    The stable phase runs at :func:`rate_prior`'s guess of the weight; a decay branch at the
    guess measures its rate (levels at their best scales: the file's payload); while the
    branches miss by more than ``RATE_TOLERANCE`` (at most ``RATE_BRANCHES``), another runs
    from the same stable state at :func:`next_rate_weight`. The branch that lands closest is
    kept; above the target its steps are coarsened onto it
    (:func:`codec.finetune.finish_fit_at_rate`), below it is written as fitted. Costs 1 to 1.8
    fits.

    Measured against the previous controller (dual ascent on log lam during the whole fit,
    which over-shot because a short fit's rate keeps falling after lam rises: carphone 32
    frames at 0.05 bpp ended at 0.0063 bpp, 12.6 dB): docs/experiments.md "rate-prior", "bpp-control".
    """
    goal = (s.target_bpp - header_bpp) * pixels  # the GOP section's bits
    levels_guess = goal - 8 * section_overhead_bytes([1] * len(decode_param_names(model))) - 32
    lam0 = rate_prior(max(levels_guess, 1.0) / pixels)
    stable = replace(s, lam=lam0)
    state = start_fit(model, base, stable)
    run_fit(model, target, base, state, stable, decay_start(stable), pixels, progress, desc, shown_pixels=shown_pixels)

    def miss(bits: float) -> float:  # |log| of the rate error
        return abs(math.log(max(bits, 1.0) / max(goal, 1.0)))

    tried: list[tuple[float, float]] = []
    best: tuple[FitState, float, float, float] | None = None
    lam = lam0
    for _ in range(RATE_BRANCHES):
        st = branch(state)
        st.lam = lam
        run_fit(model, target, base, st, replace(s, lam=lam), s.steps, pixels, progress, f"{desc} lam={lam:.3g}",
                shown_pixels=shown_pixels)
        levels = st.rate.levels_flat(st.resid)
        # the section's bits besides the levels' (tensor records from the largest levels, + the
        # last word's padding), then the whole section's
        side = 8.0 * section_overhead_bytes(st.rate.largest_levels(levels)) + 32
        bits = float(st.rate.coded_bits(levels)) + side
        tried.append((lam, bits))
        if best is None or miss(bits) < miss(best[2]):
            best = (st, lam, bits, side)
        if goal <= 0 or miss(bits) <= math.log1p(RATE_TOLERANCE):
            break
        lam = min(max(next_rate_weight(tried, goal), lam0 / 64), lam0 * 64)
    chosen, lam, bits, side = best
    # Only ever coarsen: finer steps than the fit's turn the residuals it parked inside the zero
    # bin (free under the rate term, never meant to be coded) into noise. carphone, 120 frames,
    # --bpp 0.008: refined onto the target 2,975 B at 17.13 dB; the branch as fitted 1,397 B at
    # 21.41 dB (docs/experiments.md "rate-prior", "bpp-control").
    if bits <= goal:
        return finish_fit(chosen), lam, chosen.rollbacks
    return finish_fit_at_rate(chosen, max(goal - side, 0.0)), lam, chosen.rollbacks
