"""GOP coding: a GOP's fitted rungs -> the sections the file will hold, and what they measure.

Each rung's levels are entropy-coded (:func:`gop_record`), the record is serialized as the
GOP's section, and the frames the decoder makes from that record (with the decoder's own
functions, on the CPU, in its frame batches) are compared with the source frames while they
are in memory (:func:`decoded_mse`): the PSNR an encode reports is measured, not estimated.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from bitstreams import GopRecord, TensorRecord
from bitstreams.format import encode_gop
from codec.decoder import DECODE_BATCH, gop_model, gop_weights, render
from codec.entropy import encode_tensors, fit_laplace, model_bits
from codec.finetune import CodedGop
from codec.gopfit import fit_rungs
from codec.metrics import frame_mse
from codec.plan import GopPlan


@dataclass
class CodedRung:
    """One GOP at one quality, as the file will hold it, and what it measured."""

    section: bytes  # the GOP section (``bitstreams.format.encode_gop``)
    words: int  # ANS words in it (the rest is side information)
    bits: float  # payload bits the entropy models predict
    lam: float  # the rate weight the fit ended with
    mse: np.ndarray  # float64 per frame: decoded from the section's record against the source
    rollbacks: int = 0  # times the fit's divergence guard rolled it back (metanerv.fit.GUARD_DB)
    source: bytes = bytes(32)  # frames_digest of the source frames it was fitted to (codec.resume checks it)


def frames_digest(chunk: np.ndarray) -> bytes:
    """SHA-256 of a GOP's uint8 source frames: a resumed encode keeps a GOP only if its input
    still decodes to the frames the GOP was fitted to (``codec.resume``)."""
    return hashlib.sha256(np.ascontiguousarray(chunk, dtype=np.uint8)).digest()


def gop_record(coded: CodedGop, first: int, n: int) -> tuple[GopRecord, float]:
    """Entropy-code a fitted GOP; returns the record and the models' ideal payload bits."""
    models = [fit_laplace(lv) for lv in coded.levels]
    words = encode_tensors(coded.levels, models)
    tensors = [TensorRecord(np.float16(st if m.K else 0), m.K, m.R) for st, m in zip(coded.steps, models)]
    bits = sum(model_bits(lv, m) for lv, m in zip(coded.levels, models))
    return GopRecord(first, n, tensors, words), bits


def decoded_mse(record: GopRecord, chunk: np.ndarray, plan: GopPlan) -> np.ndarray:
    """Per-frame MSE of the frames the decoder makes from ``record`` (on the CPU, in its frame
    batches, with its weight reconstruction) against the source frames ``chunk``."""
    weights = gop_weights(plan.shapes, record, plan.base_tensors(), "encoder")
    model = gop_model(plan.config, plan.grid_hw, weights)
    n = chunk.shape[0]
    decoded = render(model, list(range(n)), n, plan.height, plan.width, torch.device("cpu"), DECODE_BATCH,
                     coded_hw=plan.coded_hw)
    return frame_mse(decoded, chunk)


def code_gop(chunk: np.ndarray, gi: int, first: int, plan: GopPlan, *, progress: bool = False,
             label: str = "") -> dict[int, CodedRung]:
    """Fit, entropy-code and measure one GOP: per rung its section bytes and per-frame MSEs."""
    out: dict[int, CodedRung] = {}
    done: dict[int, CodedRung] = {}  # rungs fitted once (the same CodedGop) are coded once
    source = frames_digest(chunk)
    for q, (coded, lam, rollbacks) in fit_rungs(chunk, gi, plan, progress=progress, label=label).items():
        if id(coded) not in done:
            record, bits = gop_record(coded, first, chunk.shape[0])
            done[id(coded)] = CodedRung(encode_gop(record, gi), len(record.words), bits, lam,
                                        decoded_mse(record, chunk, plan), rollbacks, source)
        out[q] = done[id(coded)]
    return out
