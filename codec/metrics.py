"""What the encoder measures of the frames the decoder makes: per-frame MSE and PSNR."""
from __future__ import annotations

import numpy as np


def frame_mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame mean squared error (float64) of two uint8 ``[n, H, W, 3]`` clips."""
    return np.array([np.mean((x.astype(np.float32) - y.astype(np.float32)) ** 2, dtype=np.float64)
                     for x, y in zip(a, b)], dtype=np.float64)


def psnr_of_mse(mse: np.ndarray) -> float:
    """PSNR (dB) from per-frame MSEs: their mean, then dB (what :func:`rgb_psnr` reports, so a
    clip measured GOP by GOP gives the number measured whole)."""
    m = float(np.mean(mse))
    return float("inf") if m == 0 else float(10.0 * np.log10(255.0 ** 2 / m))


def rgb_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames: mean over frames of the per-frame MSE, then dB."""
    return psnr_of_mse(frame_mse(a, b))
