"""Entropy coding of quantized tensors with constriction's ANS coder.

Each tensor is coded with a categorical model whose frequency table (the tensor's own
histogram) travels in the bitstream, so the decoder rebuilds exactly the same model: the
probabilities are ``counts / sum(counts)`` handed to ``constriction.stream.model.Categorical``
with ``perfect=False``, whose fixed-point rounding is deterministic.
"""
from __future__ import annotations

import constriction
import numpy as np

from codec.errors import NervcError


class EntropyError(NervcError):
    """Coded data inconsistent with its frequency table."""


def _model(counts: np.ndarray):
    probs = counts.astype(np.float64)
    return constriction.stream.model.Categorical(probs / probs.sum(), perfect=False)


def encode_levels(levels: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Integer levels -> (lowest level, frequency table over [lo, hi], uint32 ANS words)."""
    flat = np.asarray(levels, dtype=np.int64).ravel()
    lo, hi = int(flat.min()), int(flat.max())
    symbols = (flat - lo).astype(np.int32)
    counts = np.bincount(symbols, minlength=hi - lo + 1).astype(np.uint32)
    if len(counts) == 1:  # a single symbol: its count says everything
        return lo, counts, np.zeros(0, np.uint32)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(symbols, _model(counts))
    return lo, counts, coder.get_compressed().astype(np.uint32)


def decode_levels(lo: int, counts: np.ndarray, words: np.ndarray, numel: int) -> np.ndarray:
    """Inverse of ``encode_levels``; raises EntropyError on any inconsistency."""
    counts = np.asarray(counts, dtype=np.uint64)
    if int(counts.sum()) != numel or numel == 0:
        raise EntropyError("frequency table does not match the tensor size")
    if len(counts) == 1:
        if len(words):
            raise EntropyError("single-symbol tensor carries coded words")
        return np.full(numel, lo, dtype=np.int64)
    try:
        coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
        symbols = coder.decode(_model(counts), numel)
        exhausted = coder.is_empty()
    except BaseException as e:  # constriction raises ValueError/AssertionError or a Rust panic
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise EntropyError(f"corrupted entropy-coded data ({type(e).__name__})") from None
    symbols = np.asarray(symbols, dtype=np.int64)
    if not np.array_equal(np.bincount(symbols, minlength=len(counts)), counts.astype(np.int64)):
        raise EntropyError("decoded symbols do not match their frequency table (corrupted data)")
    if not exhausted:
        raise EntropyError("unconsumed entropy-coded data (corrupted data)")
    return symbols + lo
