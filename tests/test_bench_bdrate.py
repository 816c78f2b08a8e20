"""Bjøntegaard delta rate (PCHIP) on cases with known answers."""
from __future__ import annotations

import math

import pytest

from benchmarks.bdrate import bd_psnr, bd_rate, overlap

ANCHOR_R = [9487.76, 4593.60, 2486.44, 1358.24]
ANCHOR_Q = [40.037, 38.615, 36.845, 34.851]


def test_same_curve_with_rate_scaled_by_0_9_is_minus_10_percent():
    assert bd_rate(ANCHOR_R, ANCHOR_Q, [r * 0.9 for r in ANCHOR_R], ANCHOR_Q) == pytest.approx(-10.0)
    assert bd_rate(ANCHOR_R, ANCHOR_Q, [r * 1.1 for r in ANCHOR_R], ANCHOR_Q) == pytest.approx(10.0)
    assert bd_rate(ANCHOR_R, ANCHOR_Q, ANCHOR_R, ANCHOR_Q) == pytest.approx(0.0, abs=1e-12)


def test_published_x265_example():
    # Example data of FAU-LMS/bjontegaard (x265 at two presets); the expected values are what
    # its PCHIP mode (bjontegaard 1.3.0, stated to match the JCTVC-L1100 / JVET Excel sheet
    # to 10 decimals) returns for these points.
    rate_test = [9787.80, 4469.00, 2451.52, 1356.24]
    psnr_test = [40.121, 38.651, 36.970, 34.987]
    assert bd_rate(ANCHOR_R, ANCHOR_Q, rate_test, psnr_test) == pytest.approx(-4.417485350589045, abs=1e-9)
    assert bd_psnr(ANCHOR_R, ANCHOR_Q, rate_test, psnr_test) == pytest.approx(0.11969278542479489, abs=1e-9)


def test_hand_computed_linear_curves():
    # Collinear points are interpolated exactly by PCHIP, so the integral is elementary:
    # anchor log10 R = 0.1 P - 2 on P in [30, 36]; test log10 R = 0.08 P - 1.4 on [31, 37].
    # Shared range [31, 36]; mean gap = 0.6 - 0.02 * 33.5 = -0.07 -> 10**-0.07 - 1.
    pa = [30.0, 32.0, 34.0, 36.0]
    pt = [31.0, 33.0, 35.0, 37.0]
    ra = [10 ** (0.1 * p - 2) for p in pa]
    rt = [10 ** (0.08 * p - 1.4) for p in pt]
    assert bd_rate(ra, pa, rt, pt) == pytest.approx((10 ** -0.07 - 1) * 100, abs=1e-9)


def test_order_of_points_does_not_matter():
    rate_test = [1356.24, 9787.80, 2451.52, 4469.00]
    psnr_test = [34.987, 40.121, 36.970, 38.651]
    assert bd_rate(ANCHOR_R[::-1], ANCHOR_Q[::-1], rate_test, psnr_test) == pytest.approx(-4.417485350589045)


def test_disjoint_curves_give_none():
    assert bd_rate([1, 2, 4], [20, 22, 24], [1, 2, 4], [30, 32, 34]) is None
    assert overlap([20, 24], [30, 34]) is None
    assert overlap([20, 31], [30, 34]) == (30, 31)


def test_bd_psnr_of_constant_shift():
    assert bd_psnr(ANCHOR_R, ANCHOR_Q, ANCHOR_R, [q + 0.5 for q in ANCHOR_Q]) == pytest.approx(0.5)


def test_rejects_non_positive_rates():
    with pytest.raises(ValueError):
        bd_rate([0, 1, 2], [1, 2, 3], [1, 2, 3], [1, 2, 3])
    assert math.isfinite(bd_rate([1, 2, 3], [1, 2, 3], [1, 2, 3], [1.5, 2.5, 3.5]))


def test_quality_gap_is_defined_where_bd_rate_is_not():
    from benchmarks.table import quality_gaps

    def recs(pts):
        return [{"bpp": b, "psnr_rgb": q} for b, q in pts]
    # anchor linear in log2(bpp): 30 dB at 0.05, 32 at 0.1, 34 at 0.2, 36 at 0.4
    anchor = recs([(0.05, 30.0), (0.1, 32.0), (0.2, 34.0), (0.4, 36.0)])
    far_behind = recs([(0.1, 20.0), (0.2, 21.0), (0.8, 22.0)])  # 0.8 bpp is outside: skipped
    by_clip = {"a": {"x265": anchor, "nervc": far_behind}, "b": {"x265": anchor}}
    assert bd_rate([r["bpp"] for r in anchor], [r["psnr_rgb"] for r in anchor],
                   [r["bpp"] for r in far_behind], [r["psnr_rgb"] for r in far_behind]) is None
    gaps = quality_gaps(by_clip, "nervc", "x265", "psnr_rgb")
    assert gaps["a"] == pytest.approx(((32 - 20) + (34 - 21)) / 2, abs=0.05)
    assert gaps["b"] is None


def test_init_gain_compares_meta_with_random_init_per_clip():
    from benchmarks.table import init_gains

    def recs(pts):
        return [{"bpp": b, "psnr_rgb": q} for b, q in pts]
    random = recs([(0.1, 20.0), (0.2, 22.0), (0.4, 24.0)])
    meta = recs([(0.1, 21.0), (0.2, 23.0), (0.4, 25.0)])  # random + 1 dB at every rate
    by_clip = {"a": {"nervc-random": random, "nervc-meta": meta}, "b": {"nervc-meta": meta}}
    gains = init_gains(by_clip, "psnr_rgb")
    assert set(gains) == {"a"}
    rate, quality = gains["a"]
    assert quality == pytest.approx(1.0)
    # 2 dB per doubling of rate: 1 dB better = the same quality at 2**-0.5 of the bits
    assert rate == pytest.approx((2 ** -0.5 - 1) * 100, abs=0.5)
