"""Quantization, pruning and entropy coding: the pieces between weights and bytes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.entropy import EntropyError, decode_levels, encode_levels
from codec.prune import global_magnitude_masks
from codec.quantize import dequantize, fake_quantize, qmax, quantize


@pytest.mark.parametrize("bits", [2, 4, 6, 8, 10])
def test_quantize_error_is_at_most_half_a_step_per_channel(bits):
    w = torch.randn(12, 5, 3, 3) * torch.linspace(0.01, 3, 12).view(-1, 1, 1, 1)
    q, s = quantize(w, bits)
    assert q.abs().max() <= qmax(bits)
    assert torch.equal(s, s.half().float())  # exactly representable in the bitstream
    err = (dequantize(q, s) - w).abs().flatten(1).amax(1)
    assert torch.all(err <= s * 0.5 + s * 1e-3 + 1e-7)


def test_zero_channel_and_vector_tensors():
    w = torch.zeros(3, 4)
    q, s = quantize(w, 6)
    assert torch.all(q == 0) and torch.all(s == 0)
    b = torch.tensor([0.5, -1.0, 0.25])
    q, s = quantize(b, 8)
    assert s.shape == (1,) and torch.allclose(dequantize(q, s), b, atol=float(s) / 2 + 1e-6)


def test_fake_quantize_passes_gradients_straight_through():
    w = torch.randn(4, 4, requires_grad=True)
    fake_quantize(w, 4).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_global_pruning_hits_the_ratio_across_tensors():
    r = {"a": torch.randn(100), "b": torch.randn(50, 4) * 10}
    m = global_magnitude_masks(r, 0.3)
    kept = sum(float(v.sum()) for v in m.values())
    assert kept == pytest.approx(0.7 * 300, abs=1)
    assert m["b"].mean() > m["a"].mean()  # the larger tensor keeps more: one global threshold


@pytest.mark.parametrize("spread", [0.0, 0.3, 3.0, 40.0])
def test_entropy_round_trip_and_rate_near_entropy(spread):
    rng = np.random.default_rng(1)
    levels = np.round(rng.laplace(0, spread, 20000)).clip(-63, 63).astype(np.int64) if spread else np.full(20000, 5)
    lo, counts, words = encode_levels(levels)
    assert np.array_equal(decode_levels(lo, counts, words, levels.size), levels)
    p = counts[counts > 0] / counts.sum()
    entropy_bytes = -(counts[counts > 0] * np.log2(p)).sum() / 8
    assert 4 * len(words) <= entropy_bytes * 1.01 + 8


def test_entropy_decoder_rejects_inconsistent_data():
    levels = np.arange(-20, 20).repeat(50)
    lo, counts, words = encode_levels(levels)
    with pytest.raises(EntropyError):
        decode_levels(lo, counts, words[: len(words) // 2], levels.size)
    with pytest.raises(EntropyError):
        decode_levels(lo, counts, words, levels.size + 1)
