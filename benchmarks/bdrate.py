"""Bjøntegaard delta rate and delta PSNR (VCEG-M33), piecewise cubic (PCHIP) variant.

The JCT-VC/JVET common test conditions replaced Bjøntegaard's cubic polynomial fit by
piecewise cubic Hermite interpolation (JCTVC-L1100 spreadsheet), which cannot overshoot
between points; scipy's PchipInterpolator is the same interpolant. BD-rate interpolates
log10(rate) as a function of PSNR for both curves, integrates both over the PSNR range the
curves share, and turns the mean log difference into a percentage:
``10 ** (mean(log R_test - log R_anchor)) - 1``. Negative means the test codec needs fewer
bits for the same quality. Curves that do not overlap give ``None``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def _curve(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sort by x, drop non-finite points and average duplicate x (PCHIP needs strictly increasing x)."""
    xa, ya = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError("rate and quality must be 1-D sequences of the same length")
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    ux, inv = np.unique(xa, return_inverse=True)
    uy = np.bincount(inv, weights=ya) / np.bincount(inv)
    return ux, uy


def _mean_gap(x_a: np.ndarray, y_a: np.ndarray, x_t: np.ndarray, y_t: np.ndarray) -> float | None:
    """Mean of (f_test - f_anchor) over the shared x range; None without overlap."""
    if len(x_a) < 2 or len(x_t) < 2:
        return None
    lo, hi = max(x_a[0], x_t[0]), min(x_a[-1], x_t[-1])
    if not hi > lo:
        return None
    fa, ft = PchipInterpolator(x_a, y_a), PchipInterpolator(x_t, y_t)
    return float((ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo))


def bd_rate(rate_anchor: Sequence[float], psnr_anchor: Sequence[float],
            rate_test: Sequence[float], psnr_test: Sequence[float]) -> float | None:
    """BD-rate of test vs anchor in percent (negative = test saves bits); None without overlap.

    Rates may be in any unit (bits, bpp, kbit/s) as long as both curves use the same one.
    """
    if min(min(rate_anchor, default=1), min(rate_test, default=1)) <= 0:
        raise ValueError("rates must be positive")
    qa, la = _curve(psnr_anchor, np.log10(np.asarray(rate_anchor, np.float64)))
    qt, lt = _curve(psnr_test, np.log10(np.asarray(rate_test, np.float64)))
    gap = _mean_gap(qa, la, qt, lt)
    return None if gap is None else float((10.0 ** gap - 1.0) * 100.0)


def bd_psnr(rate_anchor: Sequence[float], psnr_anchor: Sequence[float],
            rate_test: Sequence[float], psnr_test: Sequence[float]) -> float | None:
    """BD-PSNR of test vs anchor in dB (positive = test is better); None without overlap."""
    ra, pa = _curve(np.log10(np.asarray(rate_anchor, np.float64)), psnr_anchor)
    rt, pt = _curve(np.log10(np.asarray(rate_test, np.float64)), psnr_test)
    return _mean_gap(ra, pa, rt, pt)


def overlap(psnr_anchor: Sequence[float], psnr_test: Sequence[float]) -> tuple[float, float] | None:
    """The PSNR interval BD-rate integrates over (None if the curves do not overlap)."""
    lo = max(min(psnr_anchor), min(psnr_test))
    hi = min(max(psnr_anchor), max(psnr_test))
    return (float(lo), float(hi)) if hi > lo else None
