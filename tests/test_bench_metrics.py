"""Colour conversion and distortion metrics of the RD benchmark."""
from __future__ import annotations

import math

import av
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from benchmarks.colour import pack_yuv420, rgb_to_yuv420, unpack_yuv420, yuv420_to_rgb
from benchmarks.metrics import (bits_per_pixel, ms_ssim, ms_ssim_scales, psnr, psnr_yuv, ssim)


def _solid(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (1, 4, 4, 3)).copy()


@pytest.mark.parametrize("rgb, yuv", [
    ((0, 0, 0), (16, 128, 128)), ((255, 255, 255), (235, 128, 128)),
    ((255, 0, 0), (81, 90, 240)), ((0, 255, 0), (145, 54, 34)), ((0, 0, 255), (41, 240, 110)),
])
def test_bt601_limited_range_primaries(rgb, yuv):
    # Textbook BT.601 studio-range values of black, white and the primaries.
    y, u, v = rgb_to_yuv420(_solid(rgb))
    assert (int(y[0, 0, 0]), int(u[0, 0, 0]), int(v[0, 0, 0])) == yuv


def test_gray_ramp_round_trip_within_one_level():
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, None, :, None], 3, axis=-1).repeat(2, axis=1)
    back = yuv420_to_rgb(*rgb_to_yuv420(ramp))
    assert np.abs(back.astype(int) - ramp).max() <= 1


def test_odd_size_rejected():
    with pytest.raises(ValueError, match="even"):
        rgb_to_yuv420(np.zeros((1, 5, 4, 3), np.uint8))


def test_pack_matches_pyav_layout():
    # Height 54 -> chroma height 27, where a naive [H/4, W] reshape would break.
    rng = np.random.default_rng(0)
    y, u, v = rgb_to_yuv420(rng.integers(0, 256, (1, 54, 90, 3), dtype=np.uint8))
    buf = pack_yuv420(y[0], u[0], v[0])
    frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
    assert frame.planes[1].width == 45 and frame.planes[1].height == 27
    for a, b in zip(unpack_yuv420(frame.to_ndarray()), (y[0], u[0], v[0])):
        assert np.array_equal(a, b)


def test_psnr_is_mean_of_frame_mse_then_db():
    ref = np.full((2, 4, 4, 3), 100, np.uint8)
    dist = ref.copy()
    dist[0] += 2  # frame 0: MSE 4, frame 1: MSE 0 -> clip MSE 2
    assert psnr(ref, dist) == pytest.approx(10 * math.log10(255 ** 2 / 2))
    assert psnr(ref, ref) == math.inf


def test_yuv_psnr_weights_6_1_1():
    y = np.full((1, 4, 4), 100, np.uint8)
    c = np.full((1, 2, 2), 100, np.uint8)
    r = psnr_yuv((y, c, c), (y + 1, c + 2, c + 2))
    assert r["psnr_yuv"] == pytest.approx((6 * r["psnr_y"] + r["psnr_u"] + r["psnr_v"]) / 8)
    assert r["psnr_y"] == pytest.approx(10 * math.log10(255 ** 2))


def test_single_scale_ssim_matches_scikit_image():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(int) + rng.normal(0, 20, ref.shape), 0, 255).astype(np.uint8)
    expected = np.mean([structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255,
                                              channel_axis=-1) for a, b in zip(ref, dist)])
    assert ssim(ref, dist) == pytest.approx(expected, abs=1e-10)


def test_ms_ssim_scales_shrink_for_small_frames():
    assert ms_ssim_scales(288, 352) == 5
    assert ms_ssim_scales(180, 320) == 5
    assert ms_ssim_scales(144, 176) == 4  # 144 -> 72 -> 36 -> 18; 9 would not hold a window
    assert ms_ssim_scales(64, 96) == 3
    with pytest.raises(ValueError):
        ms_ssim_scales(8, 100)


def test_ms_ssim_orders_distortions():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:96, 0:128]
    base = np.stack([(xx * 2) % 256, (yy * 3) % 256, ((xx + yy) * 1.5) % 256], -1)[None].astype(np.uint8)
    mild = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    strong = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(base, base) == pytest.approx(1.0)
    assert 1.0 > ms_ssim(base, mild) > ms_ssim(base, strong) > 0.0


def test_bits_per_pixel():
    assert bits_per_pixel(1000, 100, 10, 8) == pytest.approx(1.0)
