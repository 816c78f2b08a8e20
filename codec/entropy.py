"""Entropy coding of quantized tensors: a parametric model that costs two bytes to send.

Every tensor's levels ``k`` in ``[-K, K]`` are coded with a zero-mean discretized Laplace whose
only parameter travels as a 16-bit fixed-point number ``R = round(65536 * exp(-1 / (2 b)))``
(``b`` = the Laplace scale in steps). Both sides derive the frequency table from ``R`` and ``K``
with integer arithmetic only (:func:`laplace_counts`, SPEC.md "Frequency table"), so no
floating-point ``exp`` whose last bits differ between machines or libraries ever decides a
probability. The table goes to constriction's ``Categorical`` exactly as version 1 did (counts
over their sum; that division and constriction's quantization are plain IEEE arithmetic).

All tensors of one GOP share one ANS stream (one 64-bit coder state per GOP, not per tensor).
"""
from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from nervcore.errors import NervcError

R_ONE = 1 << 16
MAX_LEVEL = 32767  # |level| bound: keeps every frequency table at most 65,535 entries


class EntropyError(NervcError):
    """Coded data inconsistent with its models."""


@dataclass(frozen=True)
class LaplaceModel:
    """The entropy model of one tensor: levels in ``[-K, K]``, decay parameter ``R``."""

    K: int
    R: int

    @property
    def size(self) -> int:
        return 2 * self.K + 1


def _half_counts(Rs: np.ndarray, K: int) -> np.ndarray:
    """Integer frequencies of ``|k| = 0..K`` for every ``R`` in ``Rs`` (rows), as SPEC.md defines
    them: the recurrence of :func:`laplace_counts` run on a vector of ``R`` at once (every
    product stays below 2^49, exact in int64)."""
    R = np.asarray(Rs, dtype=np.int64)
    T = (R * R) >> 16
    f = np.empty((R.size, K + 1), dtype=np.int64)
    f[:, 0] = (R_ONE - R) << 16
    if K >= 1:
        f[:, 1] = (R * (R_ONE - T)) >> 1
        for m in range(2, K + 1):
            f[:, m] = (f[:, m - 1] * T) >> 16
    return np.maximum(f >> 8, 1)


def laplace_counts(R: int, K: int) -> np.ndarray:
    """Integer frequencies of levels ``-K..K`` (index ``k + K``), as SPEC.md defines them.

    With ``r = R / 2^16`` and ``t = r^2``: ``P(0) = 1 - r``, ``P(k) = r (1 - t) t^(|k|-1) / 2``.
    In 2^-32 units: ``f0 = (2^16 - R) << 16``, ``f1 = (R (2^16 - T)) >> 1`` with
    ``T = (R R) >> 16``, ``f(m+1) = (f(m) T) >> 16``; the count of level ``k`` is
    ``max(f(|k|) >> 8, 1)`` so every level in range stays codable.
    """
    if not (0 <= R < R_ONE and 0 <= K <= MAX_LEVEL):
        raise EntropyError(f"entropy model R={R}, K={K} out of range")
    half = _half_counts(np.array([R]), K)[0]
    return np.concatenate([half[:0:-1], half]).astype(np.uint32)


def _categorical(model: LaplaceModel):
    counts = laplace_counts(model.R, model.K).astype(np.float64)
    return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


def model_bits(levels: np.ndarray, model: LaplaceModel) -> float:
    """Ideal code length (bits) of ``levels`` under ``model``'s integer table."""
    if model.K == 0:
        return 0.0
    counts = laplace_counts(model.R, model.K).astype(np.float64)
    logp = np.log2(counts / counts.sum())
    hist = np.bincount(np.asarray(levels, np.int64).ravel() + model.K, minlength=model.size)
    return float(-(hist * logp).sum())


def table_bits(abs_hist: np.ndarray, Rs: np.ndarray) -> np.ndarray:
    """Ideal code length (bits) of levels whose magnitudes have histogram ``abs_hist``
    (``abs_hist[m]`` = levels with ``|k| = m``, ``K = len - 1``) under the integer table of each
    ``R`` in ``Rs``: :func:`model_bits` for many parameters at once (the table is symmetric)."""
    h = np.asarray(abs_hist, dtype=np.float64)
    K, n = h.size - 1, float(h.sum())
    Rs = np.asarray(Rs, dtype=np.int64)
    out = np.empty(Rs.size, dtype=np.float64)
    chunk = max(1, (1 << 22) // (K + 1))  # bounds the work array at 4M entries
    for i in range(0, Rs.size, chunk):
        half = _half_counts(Rs[i:i + chunk], K).astype(np.float64)
        total = half[:, 0] + 2.0 * half[:, 1:].sum(axis=1)
        out[i:i + chunk] = n * np.log2(total) - (np.log2(half) * h[None, :]).sum(axis=1)
    return out


# The parameters fit_laplace scans first: log-spaced over the whole u16 range (sparse tensors,
# whose best R is a few units: a sqrt-spaced grid that started at 2896 cost the sparse
# tensors of the low rungs up to 10x their entropy, 2026-11-29) and sqrt-spaced (dense near 1,
# where wide tensors' scales sit).
_R_COARSE = np.unique(np.concatenate([
    np.round(np.logspace(0.0, np.log10(R_ONE - 1), 257)),
    np.round(np.linspace(0.0, 1.0, 513)[1:-1] ** 0.5 * R_ONE)]).clip(1, R_ONE - 1)).astype(np.int64)
_SCAN_ENTRIES = 1 << 22  # work bound of each refinement scan (candidates x table length)


def fit_laplace(levels: np.ndarray) -> LaplaceModel:
    """The model (``K`` = max |level|, best ``R``) that codes ``levels`` in the fewest bits.

    The exact integer-table cost (:func:`table_bits`) on a coarse grid over every ``R`` the
    format can send, then on every integer between the best one's neighbours (a stride when the
    table is long, then its neighbourhood); the encoder alone runs this, the decoder reads ``R``.
    """
    a = np.abs(np.asarray(levels, np.int64).ravel())
    K = int(a.max()) if a.size else 0
    if K > MAX_LEVEL:
        raise EntropyError(f"level {K} exceeds the format's limit of {MAX_LEVEL}")
    if K == 0:
        return LaplaceModel(0, 0)
    hist = np.bincount(a, minlength=K + 1)
    cands = _R_COARSE
    while True:
        bits = table_bits(hist, cands)
        i = int(np.argmin(bits))
        lo, hi = int(cands[max(i - 1, 0)]), int(cands[min(i + 1, cands.size - 1)])
        if hi - lo <= 2:
            return LaplaceModel(K, int(cands[i]))
        stride = max(1, -(-(hi - lo + 1) * (K + 1) // _SCAN_ENTRIES))
        cands = np.arange(lo, hi + 1, stride, dtype=np.int64)
        if stride == 1:
            bits = table_bits(hist, cands)
            return LaplaceModel(K, int(cands[int(np.argmin(bits))]))


END_MARKER = 0x4E56  # version 4: the last symbol of every GOP's stream, uniform over 16 bits


def _uniform16():
    return constriction.stream.model.Uniform(1 << 16)


def encode_tensors(levels: list[np.ndarray], models: list[LaplaceModel], marker: bool = True) -> np.ndarray:
    """One ANS stream (uint32 words) for every tensor of a GOP, decodable in list order.

    With ``marker`` (bitstream version 4) the stream ends with :data:`END_MARKER`: a stream cut
    short or padded decodes to another value (or leaves words over), so the entropy decoder
    itself refuses it, not only the section's CRC."""
    coder = constriction.stream.stack.AnsCoder()
    if marker:  # encoded first: decoded last
        coder.encode_reverse(np.array([END_MARKER], np.int32), _uniform16())
    for lv, m in reversed(list(zip(levels, models))):
        if m.K == 0:
            continue
        symbols = (np.asarray(lv, np.int64).ravel() + m.K).astype(np.int32)
        coder.encode_reverse(symbols, _categorical(m))
    return coder.get_compressed().astype(np.uint32)


END_MARKER_WORDS = encode_tensors([], [])  # the stream of a version-4 GOP whose every tensor has K = 0


def decode_tensors(words: np.ndarray, models: list[LaplaceModel], sizes: list[int],
                   marker: bool = True) -> list[np.ndarray]:
    """Inverse of :func:`encode_tensors`; raises EntropyError on any inconsistency.

    Nothing from the data reaches constriction unchecked, and any exception it raises on crafted
    words, including a Rust panic (pyo3's PanicException derives from BaseException), becomes an
    EntropyError. The stream must be consumed exactly (and end with the marker, when ``marker``).
    """
    words = np.asarray(words)
    if words.ndim != 1 or (len(words) and words.dtype != np.uint32):
        raise EntropyError("malformed coded words")
    coded = [m.K > 0 for m in models]
    if not any(coded) and not marker:
        if len(words):
            raise EntropyError("coded words present but every tensor is zero")
        return [np.zeros(n, np.int64) for n in sizes]
    # No words with coded tensors is valid: when every level is -K (symbol 0, whose range
    # starts at 0) the coder's state never leaves 0 and the stream is empty.
    out = []
    try:
        coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
        for m, n in zip(models, sizes):
            if m.K == 0:
                out.append(np.zeros(n, np.int64))
                continue
            symbols = np.asarray(coder.decode(_categorical(m), n))
            if symbols.shape != (n,) or (n and (int(symbols.min()) < 0 or int(symbols.max()) >= m.size)):
                raise EntropyError("decoded symbol outside its model (corrupted data)")
            out.append(symbols.astype(np.int64) - m.K)
        if marker and int(np.asarray(coder.decode(_uniform16(), 1))[0]) != END_MARKER:
            raise EntropyError("the entropy-coded data ends early or late (end marker not found)")
        exhausted = coder.is_empty()
    except EntropyError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise
    except BaseException as e:  # noqa: BLE001 - ValueError, AssertionError or a Rust panic
        raise EntropyError(f"corrupted entropy-coded data ({type(e).__name__})") from None
    if not exhausted:
        raise EntropyError("unconsumed entropy-coded data (corrupted data)")
    return out

