"""A tiny clip of flat, saturated colours comes back in its colours at the default preset and rung.

Issue 34 item 5: 16 frames of 64x48, the left half pure red, the right half pure blue, the bottom
quarter grey 128, stored losslessly; ``nervc encode`` at `medium`, ``-q 5`` decoded grey-purple
(about (134, 27, 127) everywhere, 8.6 dB). The GOP is 0.05 MP, so the per-megapixel budget gave
it 29 steps, and a fit that short starts its quantization steps so fine that no weight move is
worth its bits at this rung (``codec.presets.MIN_BUDGET_MP``, ``metanerv.fit.start_step_factor``).
Each patch's interior (6x6 pixels away from the edges, every frame) must be within 4 levels of
its colour.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

import codec
from codec.cli import main
from nervcore.video_io import write_video

RED, BLUE, GREY = (255, 0, 0), (0, 0, 255), (128, 128, 128)
# (colour, rows, columns) of each patch's interior
PATCHES = [(RED, slice(15, 21), slice(13, 19)), (BLUE, slice(15, 21), slice(45, 51)),
           (GREY, slice(39, 45), slice(29, 35))]
TOL = 4


def flat_clip() -> np.ndarray:
    f = np.zeros((16, 48, 64, 3), np.uint8)
    f[:, :, :32] = RED
    f[:, :, 32:] = BLUE
    f[:, 36:] = GREY
    return f


def test_flat_colour_clip_keeps_its_colours_at_the_default_preset_and_rung(tmp_path, one_thread):
    src, out = tmp_path / "c.mkv", tmp_path / "c.nerv"
    frames = flat_clip()
    write_video(src, frames, Fraction(25), 64, 48)
    assert main(["encode", str(src), str(out), "--quiet"]) == 0
    decoded = codec.decode(out).frames
    assert decoded.shape == frames.shape
    for colour, rows, cols in PATCHES:
        mean = decoded[:, rows, cols].reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - np.array(colour)).max() <= TOL, (colour, mean.round(1).tolist())
    assert out.stat().st_size < 2000  # and it costs little (435 B measured, 2026-12-08)


def test_short_fits_start_with_coarser_steps():
    from metanerv.fit import MAX_START_COARSEN, SHORT_FIT_STEPS, start_step_factor
    assert start_step_factor(SHORT_FIT_STEPS) == start_step_factor(5000) == 1.0  # `medium` fits as before
    assert start_step_factor(SHORT_FIT_STEPS - 100) == 2.0
    assert start_step_factor(29) == start_step_factor(1) == MAX_START_COARSEN
