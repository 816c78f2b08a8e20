"""Entropy coding of quantized tensors with constriction's ANS coder.

Each tensor is coded with a categorical model whose frequency table (the tensor's own
histogram) travels in the bitstream, so the decoder rebuilds exactly the same model: the
probabilities are ``counts / sum(counts)`` handed to ``constriction.stream.model.Categorical``
with ``perfect=False``, whose fixed-point rounding is deterministic.
"""
from __future__ import annotations

import constriction
import numpy as np

from nervcore.errors import NervcError


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
    """Inverse of ``encode_levels``; raises EntropyError on any inconsistency.

    Nothing that comes from the data reaches constriction unchecked: the table must be a
    non-empty 1-D array of counts summing to ``numel``, and any exception constriction raises on
    crafted words, including a Rust panic (pyo3's PanicException derives from BaseException),
    becomes an EntropyError. The decoded symbols must lie in the table's range, reproduce its
    histogram exactly and consume every word.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or len(counts) == 0 or counts.dtype.kind not in "ui":
        raise EntropyError("malformed frequency table")
    if counts.dtype.kind == "i" and int(counts.min()) < 0:
        raise EntropyError("negative count in the frequency table")
    counts = counts.astype(np.uint64)
    if numel <= 0 or int(counts.sum()) != numel:
        raise EntropyError("frequency table does not match the tensor size")
    words = np.asarray(words)
    if words.ndim != 1 or (len(words) and words.dtype != np.uint32):
        raise EntropyError("malformed coded words")
    if len(counts) == 1:
        if len(words):
            raise EntropyError("single-symbol tensor carries coded words")
        return np.full(numel, lo, dtype=np.int64)
    try:
        model = _model(counts)
        coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
        symbols = np.asarray(coder.decode(model, numel))
        exhausted = coder.is_empty()
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise
    except BaseException as e:  # noqa: BLE001 - ValueError, AssertionError or a Rust panic
        raise EntropyError(f"corrupted entropy-coded data ({type(e).__name__})") from None
    if symbols.shape != (numel,):
        raise EntropyError("entropy decoder returned the wrong number of symbols")
    if int(symbols.min()) < 0 or int(symbols.max()) >= len(counts):
        raise EntropyError("decoded symbol outside the frequency table (corrupted data)")
    if not np.array_equal(np.bincount(symbols, minlength=len(counts)), counts.astype(np.int64)):
        raise EntropyError("decoded symbols do not match their frequency table (corrupted data)")
    if not exhausted:
        raise EntropyError("unconsumed entropy-coded data (corrupted data)")
    levels = symbols.astype(np.int64)
    levels += lo
    return levels
