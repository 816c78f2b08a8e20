"""Distortion and rate metrics of the RD benchmark (definitions in docs/benchmarks.md).

* PSNR: 8-bit peak 255; MSE averaged over all samples of a frame, then over frames, then dB
  (one MSE for the clip, so a single perfect frame cannot make the result infinite).
* YUV PSNR: (6·Y + U + V) / 8 of per-plane PSNRs on BT.601 limited-range 4:2:0 planes.
* MS-SSIM: Wang, Simoncelli & Bovik (2003), 5 scales, Gaussian window 11 / sigma 1.5,
  K1 = 0.01, K2 = 0.03, L = 255, 2x2 mean pooling between scales, per RGB channel, averaged
  over channels and frames. When the smaller side is too short for 5 scales (the coarsest
  scale must still hold an 11x11 window), the coarsest scales are dropped and the remaining
  exponents renormalised to sum to 1. Negative contrast-structure terms are clipped to 0.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
PEAK = 255.0


def bits_per_pixel(num_bytes: int, width: int, height: int, num_frames: int) -> float:
    """Rate in bits per pixel of the whole clip (luma pixels; chroma is not counted apart)."""
    return 8.0 * num_bytes / (width * height * num_frames)


def mse_to_psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else float(10.0 * math.log10(PEAK ** 2 / mse))


def clip_mse(ref: np.ndarray, dist: np.ndarray) -> float:
    """Mean over frames (axis 0) of each frame's MSE."""
    if ref.shape != dist.shape:
        raise ValueError(f"shape mismatch {ref.shape} vs {dist.shape}")
    per_frame = [np.mean((r.astype(np.float64) - d.astype(np.float64)) ** 2) for r, d in zip(ref, dist)]
    return float(np.mean(per_frame))


def psnr(ref: np.ndarray, dist: np.ndarray) -> float:
    """PSNR of uint8 frames [N, ...] (RGB frames or one plane)."""
    return mse_to_psnr(clip_mse(ref, dist))


def psnr_yuv(ref: tuple[np.ndarray, ...], dist: tuple[np.ndarray, ...]) -> dict[str, float]:
    """Per-plane PSNR and the 6:1:1 weighted YUV PSNR of 4:2:0 planes (Y, U, V)."""
    y, u, v = (psnr(r, d) for r, d in zip(ref, dist))
    return {"psnr_y": y, "psnr_u": u, "psnr_v": v, "psnr_yuv": (6 * y + u + v) / 8}


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation of [..., H, W] with ``g``, keeping only fully covered pixels."""
    r = len(g) // 2
    y = correlate1d(x, g, axis=-2, mode="constant")[..., r:-r, :]
    return correlate1d(y, g, axis=-1, mode="constant")[..., :, r:-r]


def _ssim_terms(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean SSIM and mean contrast-structure term per leading index of [B, H, W]."""
    c1, c2 = (K1 * PEAK) ** 2, (K2 * PEAK) ** 2
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mx * mx
    syy = _filter_valid(y * y, g) - my * my
    sxy = _filter_valid(x * y, g) - mx * my
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return (lum * cs).mean(axis=(-2, -1)), cs.mean(axis=(-2, -1))


def ms_ssim_scales(height: int, width: int, max_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """How many scales fit: the coarsest must still be at least one window wide."""
    m, side = 0, min(height, width)
    while m < max_scales and side >= WINDOW:
        m += 1
        side //= 2
    if m == 0:
        raise ValueError(f"frame {width}x{height} is smaller than the {WINDOW}x{WINDOW} SSIM window")
    return m


def _pool2(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    return 0.25 * (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2])


def ms_ssim(ref: np.ndarray, dist: np.ndarray, scales: int | None = None) -> float:
    """MS-SSIM of uint8 RGB clips [N, H, W, 3] (or planes [N, H, W]), averaged over frames."""
    if ref.shape != dist.shape:
        raise ValueError(f"shape mismatch {ref.shape} vs {dist.shape}")
    if ref.ndim == 3:
        ref, dist = ref[..., None], dist[..., None]
    n, h, w, c = ref.shape
    m = scales or ms_ssim_scales(h, w)
    weights = np.array(MS_SSIM_WEIGHTS[:m])
    weights = weights / weights.sum()
    g = gaussian_window()
    vals = []
    for i in range(n):  # one frame at a time bounds memory for large frames
        x = np.moveaxis(ref[i], -1, 0).astype(np.float64)
        y = np.moveaxis(dist[i], -1, 0).astype(np.float64)
        score = np.ones(c)
        for j in range(m):
            full, cs = _ssim_terms(x, y, g)
            term = full if j == m - 1 else cs  # SSIM at the coarsest scale, cs above it
            score *= np.maximum(term, 0.0) ** weights[j]
            if j < m - 1:
                x, y = _pool2(x), _pool2(y)
        vals.append(score.mean())
    return float(np.mean(vals))


def ssim(ref: np.ndarray, dist: np.ndarray) -> float:
    """Single-scale SSIM (Gaussian 11/1.5, valid window), as MS-SSIM with one scale."""
    return ms_ssim(ref, dist, scales=1)
