"""Video -> ``.nerv``: per GOP, fit a network from the init by rate-distortion optimisation,
then entropy-code its integer levels.

``encode_ladder`` writes several rungs of the quality ladder, from one shared fit prefix (the
schedule's stable phase, see ``codec.finetune.wsd_lr``) when the fit is long enough. The reported size is the written
file's length and the reported PSNR is that of the frames the decoder makes from it: nothing
is estimated.

The encode streams: the source is decoded one GOP at a time (``VideoSource.chunks``), each
GOP is fitted (:func:`fit_gop_records`), entropy-coded, rebuilt with the decoder's own
functions and compared with its source frames while they are in memory (:func:`code_gop`),
and its section is appended to the output (``BitstreamWriter``, atomic). Memory holds one GOP
(about ``jobs`` with ``--jobs``), never the whole video. Before the file is renamed into place
it is read back and every GOP record is checked to be the one measured. GOPs are independent,
so ``jobs`` worker processes or torch.distributed ranks (:mod:`codec.parallel`) can fit them
side by side; the file is the same bytes either way (GOP ``i`` is seeded with ``seed + i``).
"""
from __future__ import annotations

import hashlib
import math
import os
import struct
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import torch
from tqdm import tqdm

from bitstreams import BitstreamError, BitstreamReader, BitstreamWriter, GopRecord, Header, TensorRecord
from bitstreams.format import (MAX_DIM, decode_header, encode_gop, encode_header, param_shapes,
                               section_overhead_bytes)
from codec.decoder import DECODE_BATCH, gop_model, gop_weights, pick_device, render
from codec.entropy import encode_tensors, fit_laplace, model_bits
from codec.finetune import (DEFAULT_TUNE, DISTORTIONS, CodedGop, FitSettings, FitState, branch, decay_start,
                            finish_fit, finish_fit_at_rate, frames_to_tensor, run_fit, start_fit)
from codec.inits import random_init_config, resolve_init
from codec.ladder import DEFAULT_GOP, DEFAULT_QUALITY, LADDER, lam_floor, rung_weight
from codec.parallel import RankLink, in_order_pool, start_distributed
from codec.presets import (DEFAULT_PRESET, auto_coded_size, auto_visits, check_preset, coded_share, coded_size,
                           fit_overrides)
from nervcore.errors import NervcError
from nervcore.video_io import Video, VideoSource, as_source, check_output
from metanerv.init_file import FIT_LR_CLAMP, InitFile, lr_scales
from metanerv.model import (NeRVConfig, build_model, decode_param_names, downscale_frames, grid_size_for, init_state_for,
                            pad_to_stride, prefilter_frames)


@dataclass
class EncodeResult:
    path: str
    num_bytes: int
    width: int
    height: int
    num_frames: int
    fps: Fraction
    psnr: float  # RGB, 8-bit, mean of per-frame MSE, of the decoded file
    encode_seconds: float
    init: str
    quality: int | None = None
    estimated_bytes: int = 0  # payload bits the entropy models predict, plus the exact overhead
    lam: float = 0.0  # the rate weight the fit ended with
    preset: str = DEFAULT_PRESET
    steps: int = 0  # fitting steps of this output, summed over its GOPs
    total_seconds: float = 0.0  # from the start until this output was written and verified
    coded_width: int = 0  # the size the networks draw (the decoder resizes to width x height)
    coded_height: int = 0
    rollbacks: int = 0  # times the divergence guard returned this output's fits to a good state (all GOPs)


    @property
    def bpp(self) -> float:
        return 8.0 * self.num_bytes / (self.width * self.height * self.num_frames)


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


def _settings(quality: int, steps: int | None, seed: int, lr: float | None, batch: int | None,
              bpp: float | None, lam: float | None, tune: str = DEFAULT_TUNE) -> FitSettings:
    """Steps, lr and batch left None come from the preset, per GOP (FitSettings' meanwhile)."""
    if quality not in LADDER:
        raise NervcError(f"quality {quality} not in {sorted(LADDER)}")
    if tune not in DISTORTIONS:
        raise NervcError(f"--tune must be one of {', '.join(DISTORTIONS)}")
    given = {k: v for k, v in {"steps": steps, "lr": lr, "batch": batch}.items() if v is not None}
    s = FitSettings(seed=seed, lam=LADDER[quality].lam if lam is None else lam, target_bpp=bpp,
                    budget_floor=lam is None and bpp is None, distortion=tune, **given)
    if s.steps < 0:
        raise NervcError("--steps must be >= 0")
    if s.batch < 1:
        raise NervcError("--batch must be >= 1")
    if not (math.isfinite(s.lr) and s.lr > 0):
        raise NervcError("--lr must be a positive number")
    if bpp is not None and not (math.isfinite(bpp) and 0 < bpp <= 24):
        raise NervcError("--bpp must be in (0, 24]")
    if not (math.isfinite(s.lam) and s.lam >= 0):
        raise NervcError("--lam must be >= 0")
    return s


def gop_record(coded: CodedGop, first: int, n: int) -> tuple[GopRecord, float]:
    """Entropy-code a fitted GOP; returns the record and the models' ideal payload bits."""
    models = [fit_laplace(lv) for lv in coded.levels]
    words = encode_tensors(coded.levels, models)
    tensors = [TensorRecord(np.float16(st if m.K else 0), m.K, m.R) for st, m in zip(coded.steps, models)]
    bits = sum(model_bits(lv, m) for lv, m in zip(coded.levels, models))
    return GopRecord(first, n, tensors, words), bits


# Rungs share a fit's stable phase only when the decay phase left to each is this long. At the
# presets' short fits (28-95 steps for 9-32 frames at medium) a 3-rung ladder sharing the
# stable phase at q7's lam wrote q3 at 5.5x the bytes of `-q 3` alone and 1.9 dB worse on
# carphone (29,815 B 19.16 dB vs 5,469 B 21.07 dB; benchmarks/results/ladder-short/);
# at rd-v2's 300 steps (decay 120) the shared ladder is the published curve.
MIN_SHARED_DECAY_STEPS = 100
# What a GOP coded at a smaller size is fitted to: the source box-averaged, moved this share of
# the way to the frame whose bicubic resize back to the source is closest to it
# (metanerv.model.prefilter_frames). On five train clips at `medium`, against the box average:
# the whole way -1.7 % BD-rate in PSNR, halfway -2.6 % (4/5 clips each; the sharper target pays
# at the top rungs and costs a little at the lowest); benchmarks/results/coded-target/.
PREFILTER_SHARE = 0.5


def coded_target(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The frames ``[n, 3, H, W]`` a GOP coded at ``height x width`` is fitted to (``PREFILTER_SHARE``)."""
    area = downscale_frames(frames, height, width)
    if PREFILTER_SHARE == 0.0 or tuple(frames.shape[-2:]) == (height, width):
        return area
    return area.lerp_(prefilter_frames(frames, height, width), PREFILTER_SHARE)


# --bpp's search (fit_to_rate): a fit at the default preset with a fixed lam spends about
# RATE_PRIOR_C * lam ** -RATE_SLOPE bits of levels per coded pixel (single-rung `medium` encodes
# of five train/ clips, -q 1..5: s.d. 0.15 in log; a static clip sits 4-7x below it, so the
# branches correct it; benchmarks/results/rate-prior/).
RATE_PRIOR_C = 0.034
RATE_SLOPE = 0.92
RATE_TOLERANCE = 0.1  # a branch this close to the target ends the search
RATE_BRANCHES = 3  # decay branches the search may try from the one stable phase
RATE_SLOPE_BOUNDS = (0.3, 2.0)  # a slope measured between two branches, clamped to these


def rate_prior(levels_bpp: float) -> float:
    """The rate weight expected to land a fit at ``levels_bpp`` bits of levels per coded pixel."""
    return min(max((RATE_PRIOR_C / max(levels_bpp, 1e-9)) ** (1.0 / RATE_SLOPE), 1e-4), 1e4)


def next_rate_weight(tried: list[tuple[float, float]], goal: float) -> float:
    """The rate weight for the next branch of ``fit_to_rate`` from the ``(lam, bits)`` tried so
    far: along the prior's slope from one point, along the slope the last two measured (the
    secant in log-log, clamped to ``RATE_SLOPE_BOUNDS``) from more."""
    lam, bits = tried[-1]
    slope = RATE_SLOPE
    if len(tried) > 1:
        (la, ba), (lb, bb) = tried[-2], tried[-1]
        if la != lb and ba > 0 and bb > 0 and ba != bb:
            slope = -math.log(bb / ba) / math.log(lb / la)
            slope = min(max(slope, RATE_SLOPE_BOUNDS[0]), RATE_SLOPE_BOUNDS[1])
    return lam * (max(bits, 1.0) / max(goal, 1.0)) ** (1.0 / slope)


def settings_tune(settings: dict[int, FitSettings]) -> str:
    """The distortion every rung of ``settings`` fits (one per encode): a step's cost depends on it."""
    return next(iter(settings.values())).distortion


@dataclass
class GopPlan:
    """What every GOP of one encode shares. Plain data (numbers, numpy arrays, dataclasses of
    them), so worker processes are handed it as is."""

    config: NeRVConfig  # the model the fit trains
    decode_config: NeRVConfig  # the same, as the decoder reads it back from the header
    grid_hw: tuple[int, int]
    width: int
    height: int
    settings: dict[int, FitSettings]  # per quality rung; the GOP index is added to each seed
    device: str = "cpu"
    init: dict[str, np.ndarray] | None = None  # the init file's tensors, float32
    base: dict[str, np.ndarray] | None = None  # the init with the video's grid: delta coding's base
    preset: str = DEFAULT_PRESET  # sets each GOP's steps, batch and lr from its size
    given: dict[str, float | int | None] | None = None  # steps/batch/lr the caller fixed (win)
    header_bpp: float = 0.0  # the file header's share of --bpp (0 when the length is unknown)
    coded_width: int = 0  # the size the networks draw (0: the output size)
    coded_height: int = 0

    def __post_init__(self) -> None:
        self.coded_width = int(self.coded_width or self.width)
        self.coded_height = int(self.coded_height or self.height)

    @property
    def coded_hw(self) -> tuple[int, int]:
        return (self.coded_height, self.coded_width)

    @property
    def coded_share(self) -> float:
        """Coded pixels per output pixel (1 when the networks draw the output size)."""
        return coded_share(self.width, self.height, self.coded_width, self.coded_height)

    def gop_fit(self, frames: int) -> dict:
        """FitSettings overrides of a GOP of ``frames`` frames (``codec.presets``): the budget
        is the output's megapixels, the steps cost what the coded size costs."""
        return fit_overrides(self.preset, self.width, self.height, frames, self.config.total_stride,
                             given=self.given, coded_hw=self.coded_hw, tune=self.tune)

    @property
    def tune(self) -> str:
        return settings_tune(self.settings)

    def gop_steps(self, frames: int) -> int:
        """Fitting steps one rung of a GOP of ``frames`` frames runs."""
        return int(self.gop_fit(frames).get("steps", next(iter(self.settings.values())).steps))

    @staticmethod
    def _tensors(arrays: dict[str, np.ndarray] | None) -> dict[str, torch.Tensor] | None:
        return None if arrays is None else {k: torch.from_numpy(v) for k, v in arrays.items()}

    def init_tensors(self) -> dict[str, torch.Tensor] | None:
        return self._tensors(self.init)

    def base_tensors(self) -> dict[str, torch.Tensor] | None:
        return self._tensors(self.base)

    @property
    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return param_shapes(self.decode_config, self.grid_hw)


@dataclass
class CodedRung:
    """One GOP at one quality, as the file will hold it, and what it measured."""

    section: bytes  # the GOP section (``bitstreams.format.encode_gop``)
    words: int  # ANS words in it (the rest is side information)
    bits: float  # payload bits the entropy models predict
    lam: float  # the rate weight the fit ended with
    mse: np.ndarray  # float64 per frame: decoded from the section's record against the source
    rollbacks: int = 0  # times the fit's divergence guard rolled it back (codec.finetune.GUARD_DB)

    def plain(self) -> tuple:
        return self.section, self.words, self.bits, self.lam, self.mse, self.rollbacks


def with_budget(s: FitSettings, seed: int, gop_fit: dict, frames: int, coded_share: float = 1.0) -> FitSettings:
    """``s`` as GOP's fit runs it: its seed, the preset's steps/batch/lr, and a -q rung's lam
    counted per source pixel (``codec.ladder.rung_weight`` of the GOP's ``coded_share``), then
    raised to the floor of that budget (``codec.ladder.lam_floor``)."""
    s = replace(s, seed=seed, **gop_fit)
    if s.budget_floor:
        floor = lam_floor(s.steps * min(s.batch, frames) / frames, coded_share)
        s = replace(s, lam=max(rung_weight(s.lam, coded_share), floor))
    return s


def fit_gop_records(chunk: np.ndarray, gi: int, first: int, plan: GopPlan,
                    settings: dict[int, FitSettings] | None = None, *, progress: bool = False,
                    label: str = "") -> dict[int, tuple[GopRecord, float, float, int]]:
    """Fit GOP ``gi`` (uint8 frames ``chunk``, the first being frame ``first`` of the video)
    once per rung of ``settings`` (default ``plan.settings``): ``{quality: (record, ideal
    payload bits, final rate weight, rollbacks of the divergence guard)}``.

    Several rungs share the stable phase of the schedule at the smallest rate weight, then each
    runs the decay phase with its own, when that phase has at least ``MIN_SHARED_DECAY_STEPS``
    steps; with fewer, each rung is fitted on its own (a short decay cannot bring the shared
    fit's rate down to a low rung's). The model and the fit are seeded with ``seed + gi``, so
    a GOP codes the same wherever and in whatever order it is fitted. ``settings`` may differ
    from GOP to GOP (their seeds must be the encode's). A -q rung's weight is first raised to
    the budget's floor (:func:`with_budget`); rungs that end up with the same settings are
    fitted once.
    """
    settings = settings or plan.settings
    dev = pick_device(plan.device)
    first_s = next(iter(settings.values()))
    seed = first_s.seed + gi
    pixels = chunk.shape[0] * plan.coded_width * plan.coded_height  # the fit's rate is per coded pixel
    shown = chunk.shape[0] * plan.width * plan.height  # the progress bar's bpp: the summary line's
    target = pad_to_stride(coded_target(frames_to_tensor(chunk), *plan.coded_hw),
                           plan.config.total_stride).to(dev)
    model = build_model(plan.config, plan.grid_hw, plan.init_tensors(), seed=seed).to(dev)
    base_cpu = plan.base_tensors()
    base = {k: v.to(dev) for k, v in base_cpu.items()} if base_cpu else None
    n = chunk.shape[0]
    gop_fit = plan.gop_fit(n)
    settings = {q: with_budget(s, seed, gop_fit, n, plan.coded_share) for q, s in settings.items()}
    if first_s.target_bpp:
        (q, s), = settings.items()
        s = replace(s, target_bpp=s.target_bpp / plan.coded_share)  # --bpp counts output pixels
        coded, lam, rollbacks = fit_to_rate(model, target, base, s, pixels, plan.header_bpp / plan.coded_share,
                                            progress, f"fit{label}", shown)
        record, bits = gop_record(coded, first, chunk.shape[0])
        return {q: (record, bits, lam, rollbacks)}
    common = replace(next(iter(settings.values())), lam=min(s.lam for s in settings.values()))
    prefix = decay_start(common)
    shared = len(settings) > 1 and common.steps - prefix >= MIN_SHARED_DECAY_STEPS
    state = None
    if shared:
        state = start_fit(model, base, common)
        run_fit(model, target, base, state, common, prefix, pixels, progress, f"fit{label}", shown_pixels=shown)
    out = {}
    for q, s in settings.items():
        twin = next((p for p in out if settings[p] == s), None)
        if twin is not None:  # rungs raised to the same budget floor: the same fit, fitted once
            out[q] = out[twin]
            continue
        if shared:  # branch off the shared stable phase with this rung's lam
            mine = branch(state)
            mine.lam = s.lam
        else:  # a fit of its own: the bytes of `nervc encode -q` at this rung
            mine = start_fit(model, base, s)
        run_fit(model, target, base, mine, s, s.steps, pixels, progress,
                f"fit{label}" + (f" q{q}" if len(settings) > 1 else ""), shown_pixels=shown)
        record, bits = gop_record(finish_fit(mine), first, chunk.shape[0])
        out[q] = (record, bits, mine.lam, mine.rollbacks)
    return out


def fit_to_rate(model, target, base, s: FitSettings, pixels: int, header_bpp: float,
                progress: bool, desc: str, shown_pixels: int | None = None) -> tuple[CodedGop, float, int]:
    """``--bpp``: a search over the rate weight on one shared fit, then a step rescale.

    The stable phase runs at :func:`rate_prior`'s guess of the weight; a decay branch at the
    guess measures its rate (levels at their best scales: the file's payload); while the
    branches miss by more than ``RATE_TOLERANCE`` (at most ``RATE_BRANCHES``), another runs
    from the same stable state at :func:`next_rate_weight`. The branch that lands closest is
    kept; above the target its steps are coarsened onto it
    (:func:`codec.finetune.finish_fit_at_rate`), below it is written as fitted. Costs 1 to 1.8
    fits.

    Measured against the previous controller (dual ascent on log lam during the whole fit,
    which over-shot because a short fit's rate keeps falling after lam rises: carphone 32
    frames at 0.05 bpp ended at 0.0063 bpp, 12.6 dB): benchmarks/README.md "Rate control".
    """
    goal = (s.target_bpp - header_bpp) * pixels  # the GOP section's bits
    levels_guess = goal - 8 * section_overhead_bytes([1] * len(decode_param_names(model))) - 32
    lam0 = rate_prior(max(levels_guess, 1.0) / pixels)
    stable = replace(s, lam=lam0)
    state = start_fit(model, base, stable)
    run_fit(model, target, base, state, stable, decay_start(stable), pixels, progress, desc, shown_pixels=shown_pixels)

    def miss(bits: float) -> float:  # |log| of the rate error
        return abs(math.log(max(bits, 1.0) / max(goal, 1.0)))

    tried: list[tuple[float, float]] = []
    best: tuple[FitState, float, float, float] | None = None
    lam = lam0
    for _ in range(RATE_BRANCHES):
        st = branch(state)
        st.lam = lam
        run_fit(model, target, base, st, replace(s, lam=lam), s.steps, pixels, progress, f"{desc} lam={lam:.3g}",
                shown_pixels=shown_pixels)
        levels = st.rate.levels_flat(st.resid)
        # the section's bits besides the levels' (tensor records from the largest levels, + the
        # last word's padding), then the whole section's
        side = 8.0 * section_overhead_bytes(st.rate.largest_levels(levels)) + 32
        bits = float(st.rate.coded_bits(levels)) + side
        tried.append((lam, bits))
        if best is None or miss(bits) < miss(best[2]):
            best = (st, lam, bits, side)
        if goal <= 0 or miss(bits) <= math.log1p(RATE_TOLERANCE):
            break
        lam = min(max(next_rate_weight(tried, goal), lam0 / 64), lam0 * 64)
    chosen, lam, bits, side = best
    # Only ever coarsen: finer steps than the fit's turn the residuals it parked inside the zero
    # bin (free under the rate term, never meant to be coded) into noise. carphone, 120 frames,
    # --bpp 0.008: refined onto the target 2,975 B at 17.13 dB; the branch as fitted 1,397 B at
    # 21.41 dB (benchmarks/README.md "Rate control").
    if bits <= goal:
        return finish_fit(chosen), lam, chosen.rollbacks
    return finish_fit_at_rate(chosen, max(goal - side, 0.0)), lam, chosen.rollbacks


def decoded_mse(record: GopRecord, chunk: np.ndarray, plan: GopPlan) -> np.ndarray:
    """Per-frame MSE of the frames the decoder makes from ``record`` (on the CPU, in its frame
    batches, with its weight reconstruction) against the source frames ``chunk``."""
    weights = gop_weights(plan.shapes, record, plan.base_tensors(), "encoder")
    model = gop_model(plan.decode_config, plan.grid_hw, weights)
    n = chunk.shape[0]
    decoded = render(model, list(range(n)), n, plan.height, plan.width, torch.device("cpu"), DECODE_BATCH,
                     coded_hw=plan.coded_hw)
    return frame_mse(decoded, chunk)


def code_gop(chunk: np.ndarray, gi: int, first: int, plan: GopPlan, *, progress: bool = False,
             label: str = "") -> dict[int, CodedRung]:
    """Fit, entropy-code and measure one GOP: per rung its section bytes and per-frame MSEs."""
    out = {}
    for q, (record, bits, lam, rollbacks) in fit_gop_records(chunk, gi, first, plan, progress=progress,
                                                             label=label).items():
        out[q] = CodedRung(encode_gop(record), len(record.words), bits, lam,
                           decoded_mse(record, chunk, plan), rollbacks)
    return out


# Worker processes (--jobs): the plan arrives once, per GOP only its frames go out and only
# plain data (bytes, numbers, a float64 array) comes back.
_WORKER_PLAN: GopPlan | None = None


def _worker_start(plan: GopPlan) -> None:
    global _WORKER_PLAN
    _WORKER_PLAN = plan


def _worker_code_gop(chunk: np.ndarray, gi: int, first: int) -> dict[int, tuple]:
    return {q: r.plain() for q, r in code_gop(chunk, gi, first, _WORKER_PLAN).items()}


def _coded_gops(src: VideoSource, gop_frames: int, plan: GopPlan, jobs: int, rank: int, world: int,
                num_gops: int | None, progress: bool) -> Iterator[tuple[int, int, dict[int, CodedRung]]]:
    """``(gop index, frames, rungs)`` of the GOPs this rank owns (``index % world == rank``),
    in order; only the frames of the GOPs being fitted are in memory."""
    def mine():
        for gi, chunk in enumerate(src.chunks(gop_frames)):
            if gi % world == rank:
                yield gi, chunk

    if jobs == 1:
        for gi, chunk in mine():
            label = "" if num_gops == 1 else f" GOP {gi + 1}" + (f"/{num_gops}" if num_gops else "")
            yield gi, len(chunk), code_gop(chunk, gi, gi * gop_frames, plan, progress=progress, label=label)
        return
    items = (((gi, len(chunk)), (chunk, gi, gi * gop_frames)) for gi, chunk in mine())
    for (gi, n), rungs in in_order_pool(items, jobs, _worker_code_gop, _worker_start, (plan,)):
        yield gi, n, {q: CodedRung(*r) for q, r in rungs.items()}


# Between ranks a GOP travels as bytes: its index and frame count, then per rung the fields of
# a CodedRung, its section and its MSEs.
_GOP_HEAD = struct.Struct("<qqI")
_RUNG_HEAD = struct.Struct("<iQQddQI")


def _pack(gi: int, n: int, rungs: dict[int, CodedRung]) -> bytes:
    parts = [_GOP_HEAD.pack(gi, n, len(rungs))]
    for q, r in rungs.items():
        mse = np.ascontiguousarray(r.mse, dtype="<f8")
        parts += [_RUNG_HEAD.pack(q, len(r.section), r.words, r.bits, r.lam, mse.size, r.rollbacks), r.section,
                  mse.tobytes()]
    return b"".join(parts)


def _unpack(data: bytes, gi: int, n: int, qualities: list[int], src: int) -> dict[int, CodedRung]:
    def bad(why: str) -> NervcError:
        return NervcError(f"rank {src} sent a malformed GOP {gi} ({why})")

    if len(data) < _GOP_HEAD.size:
        raise bad("short")
    got_gi, got_n, count = _GOP_HEAD.unpack_from(data)
    if (got_gi, got_n, count) != (gi, n, len(qualities)):
        raise bad(f"GOP {got_gi} of {got_n} frames with {count} rungs")
    pos, out = _GOP_HEAD.size, {}
    for _ in range(count):
        if pos + _RUNG_HEAD.size > len(data):
            raise bad("short")
        q, length, words, bits, lam, frames, rollbacks = _RUNG_HEAD.unpack_from(data, pos)
        pos += _RUNG_HEAD.size
        if q not in qualities or q in out or frames != n or pos + length + 8 * frames > len(data):
            raise bad("inconsistent rung")
        section = data[pos:pos + length]
        mse = np.frombuffer(data, "<f8", frames, pos + length).astype(np.float64)
        pos += length + 8 * frames
        out[q] = CodedRung(section, words, bits, lam, mse, rollbacks)
    if pos != len(data):
        raise bad("trailing bytes")
    return {q: out[q] for q in qualities}


def _verify(tmp, path, header: Header, digests: list[bytes]) -> None:
    """The finished file, read back with the decoder's reader, holds exactly the header and the
    GOP records that were measured (compared through their serialized bytes)."""
    try:
        reader = BitstreamReader(tmp)
        same = encode_header(reader.header) == encode_header(header) and len(reader.sections) == len(digests)
        for i, d in enumerate(digests if same else []):
            if hashlib.sha256(encode_gop(reader.read_gop(i))).digest() != d:
                same = False
    except BitstreamError as e:
        raise NervcError(f"internal error: {path}: the written file does not read back ({e})") from None
    if not same:
        raise NervcError(f"internal error: {path}: the written file differs from what was measured")


def _send_gops(own: Iterator[tuple[int, int, dict[int, CodedRung]]], link: RankLink) -> None:
    """A rank other than 0: fit this rank's GOPs and send each to rank 0, or the error."""
    try:
        for gi, n, rungs in own:
            link.send(_pack(gi, n, rungs))
    except Exception as e:
        try:
            link.send_error(str(e) or type(e).__name__)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise


def _gather_gops(own, link: RankLink | None, num_gops: int | None, gop_frames: int,
                 num_frames: int | None, qualities: list[int]) -> Iterator[tuple[int, int, dict[int, CodedRung]]]:
    """Rank 0: every GOP in order, its own ones fitted here, the others received."""
    if link is None or link.world == 1:
        yield from own
        return
    for gi in range(num_gops):
        src = gi % link.world
        if src == 0:
            yield next(own)
        else:
            n = min(gop_frames, num_frames - gi * gop_frames)
            yield gi, n, _unpack(link.recv(src), gi, n, qualities, src)


def _write(stream, paths: dict[int, os.PathLike], header: Header, known: bool, name: str,
           num_gops: int | None, progress: bool, start: float):
    """Append each coded GOP to every rung's file, then finish, verify and commit them."""
    est_bits = {q: 0.0 for q in paths}
    lams = {q: 0.0 for q in paths}
    words = {q: 0 for q in paths}
    rollbacks = {q: 0 for q in paths}
    mses: dict[int, list[np.ndarray]] = {q: [] for q in paths}
    digests: dict[int, list[bytes]] = {q: [] for q in paths}
    done = 0
    with ExitStack() as stack:
        writers = {q: stack.enter_context(BitstreamWriter(p, header)) for q, p in paths.items()}
        bar = stack.enter_context(tqdm(total=num_gops, desc="encode", unit="GOP",
                                       disable=not progress or num_gops == 1))
        for gi, n, rungs in stream:
            for q, r in rungs.items():
                writers[q].add_section(r.section)
                digests[q].append(hashlib.sha256(r.section).digest())
                mses[q].append(r.mse)
                est_bits[q] += r.bits
                words[q] += r.words
                lams[q] = r.lam
                rollbacks[q] += r.rollbacks
            done += n
            bar.update()
        if done == 0:
            raise NervcError(f"{name}: no video frames")
        gop_frames = header.gop_frames
        if not known:
            header = replace(header, num_frames=done, gop_frames=min(gop_frames, done),
                             num_gops=-(-done // gop_frames))
        seconds = time.perf_counter() - start
        for q, w in writers.items():
            _verify(w.finish(None if known else header), paths[q], header, digests[q])
        sizes = {q: w.commit() for q, w in writers.items()}
    return done, seconds, sizes, (est_bits, lams, words, mses, rollbacks)


def encode_ladder(source: str | os.PathLike | Video | VideoSource, outputs: dict[int, str | os.PathLike], *,
                  steps: int | None = None, init: str | os.PathLike | InitFile | None = "default",
                  gop: int | None = None, frames: slice | None = None,
                  size: tuple[int, int] | None = None, fps: Fraction | None = None, seed: int = 0,
                  device: str = "auto", lr: float | None = None, batch: int | None = None,
                  bpp: float | None = None, lam: float | None = None, progress: bool = True,
                  overwrite: bool = False, jobs: int = 1, distributed: bool = False,
                  preset: str = DEFAULT_PRESET, meta_lr: bool = True,
                  scale: int | str = "auto", tune: str = DEFAULT_TUNE) -> dict[int, EncodeResult]:
    """Encode ``source`` once per quality in ``outputs`` ({quality: path}).

    With several rungs, they share the stable phase of the fitting schedule (at the smallest
    of their rate weights) and each runs the decay phase with its own, when that phase has
    ``MIN_SHARED_DECAY_STEPS`` steps (else each rung is fitted on its own); ``bpp`` (one output
    only) steers the rate weight to hit that many bits per pixel. ``preset``
    (``codec.presets``) sets each GOP's steps, batch and lr from its size; ``steps``, ``batch``
    and ``lr`` given explicitly win over it. ``meta_lr``: when the init carries Meta-SGD step
    sizes, every Adam update of a tensor is multiplied by its learned (normalised) step size.
    ``scale``: the networks draw frames ``scale`` times smaller in each direction (1..8, each
    side rounded up) that the decoder resizes to the source's size; ``"auto"`` lets
    ``codec.presets.auto_coded_size`` choose from the preset's budget, the GOP's size and each
    rung's visit target (``codec.presets.auto_visits``: lower rungs code fewer pixels), so the
    rungs of one call may be fitted at different sizes (one encode per size).

    ``tune`` is the distortion the fit minimises (``codec.finetune.DISTORTIONS``): ``"psnr"``
    (MSE, priced per dB), ``"ssim"`` (0.7 L1 + 0.3 (1 - SSIM)) or ``"balanced"`` (half each,
    the default); the decoder does not care.

    ``source`` is a path (``frames``, ``size`` and ``fps`` apply to it), a decoded ``Video`` or
    a ``VideoSource``; it is read one GOP at a time. ``jobs`` > 1 fits that many GOPs at once
    in worker processes. ``distributed`` splits the GOPs over the ranks of a torch.distributed
    job (torchrun): every rank calls this with the same arguments, rank 0 writes the files and
    gets the results, the other ranks get ``{}``. The files are the same bytes in every case.
    """
    if not outputs:
        raise NervcError("no output requested")
    if bpp is not None and len(outputs) > 1:
        raise NervcError("--bpp sets one rate: ask for one output")
    check_preset(preset)
    settings = {q: _settings(q, steps, seed, lr, batch, bpp, lam, tune) for q in outputs}
    given = {"steps": steps, "batch": batch, "lr": lr}
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise NervcError("--jobs must be >= 1")
    groups = [(outputs, scale)]
    if scale == "auto" and len({auto_visits(q) for q in outputs}) > 1:
        for path in outputs.values():  # before any group writes its files
            check_output(path, overwrite, inputs=_input_paths(source))
        source = as_source(source, size=size, fps=fps, frames=frames)  # opened once, read per group
        init = resolve_init(init)  # read once, handed to every group
        groups = _coded_size_groups(source, outputs, preset, given, init, gop, tune)
    link, stop = start_distributed() if distributed else (None, lambda: None)
    try:
        results: dict[int, EncodeResult] = {}
        for group, coded in groups:
            results.update(_encode(source, group, {q: settings[q] for q in group}, link, preset, given,
                                   init=init, gop=gop, frames=frames, size=size, fps=fps, device=device,
                                   progress=progress, overwrite=overwrite, jobs=jobs, meta_lr=meta_lr,
                                   scale=coded))
        return results
    finally:
        stop()


def _input_paths(source) -> list:
    """The input's path (a path or a ``VideoSource``'s), so no output can overwrite it."""
    if isinstance(source, (str, os.PathLike)):
        return [source]
    path = getattr(source, "path", None)
    return [path] if isinstance(path, str) else []


def _gop_length(src: VideoSource, gop: int | None) -> int:
    """Frames per GOP: ``gop`` (default ``DEFAULT_GOP``), at most the source's length when known."""
    return min(gop or DEFAULT_GOP, src.num_frames) if src.num_frames is not None else gop or DEFAULT_GOP


def _coded_size_groups(src: VideoSource, outputs: dict[int, str | os.PathLike], preset: str, given: dict,
                       init_file: InitFile | None, gop: int | None,
                       tune: str = DEFAULT_TUNE) -> list[tuple[dict, tuple[int, int]]]:
    """The outputs of a ``--scale auto`` ladder grouped by the coded size each rung's visit
    target (``codec.presets.auto_visits``) picks: each group is one encode (its rungs share
    fits as before), rungs whose targets land on the same size stay together."""
    config = init_file.config if init_file else random_init_config()
    gop_frames = _gop_length(src, gop)
    if gop_frames < 1:
        return [(outputs, "auto")]  # let _encode report the empty source or the bad --gop
    by_size: dict[tuple[int, int], dict] = {}
    for q in sorted(outputs):
        wh = auto_coded_size(preset, src.width, src.height, gop_frames, config.total_stride, given,
                             visits=auto_visits(q), tune=tune)
        by_size.setdefault(wh, {})[q] = outputs[q]
    return [(group, wh) for wh, group in by_size.items()]


def _encode(source, outputs, settings: dict[int, FitSettings], link: RankLink | None, preset: str,
            given: dict, *, init, gop, meta_lr: bool = True, scale: int | str | tuple[int, int] = "auto",
            frames, size, fps, device, progress, overwrite, jobs) -> dict[int, EncodeResult]:
    rank, world = (link.rank, link.world) if link else (0, 1)
    paths = ({q: check_output(p, overwrite, inputs=_input_paths(source)) for q, p in outputs.items()}
             if rank == 0 else {})
    dev = pick_device(device)
    if link and dev.type == "cuda" and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    progress = progress and rank == 0
    start = time.perf_counter()
    src = as_source(source, size=size, fps=fps, frames=frames)
    known = src.num_frames is not None
    if src.width > MAX_DIM or src.height > MAX_DIM:
        raise NervcError(f"frame size {src.width}x{src.height} exceeds {MAX_DIM}")
    if gop is not None and gop < 1:
        raise NervcError("--gop must be >= 1")
    if not known and world > 1:
        raise NervcError(f"{src.path}: --distributed needs a source whose frame count is known "
                         "before it is decoded")
    init_file = resolve_init(init)
    scales = lr_scales(init_file, clamp=FIT_LR_CLAMP) if init_file and meta_lr else None
    if scales:
        settings = {q: replace(s, lr_scales=scales) for q, s in settings.items()}
    config = init_file.config if init_file else random_init_config()
    gop_frames = _gop_length(src, gop)
    num_gops = -(-src.num_frames // gop_frames) if known else None
    if scale == "auto":  # one visit target for every rung here (encode_ladder split the others)
        coded_w, coded_h = auto_coded_size(preset, src.width, src.height, gop_frames, config.total_stride, given,
                                           visits=auto_visits(min(settings)),
                                           tune=settings_tune(settings))
    elif isinstance(scale, tuple):  # resolved by _coded_size_groups
        coded_w, coded_h = scale
    else:
        coded_w, coded_h = coded_size(src.width, src.height, scale)
    grid_hw = grid_size_for(coded_h, coded_w, config)
    # Provisional counts when the source does not know its length: the header is rewritten
    # with the real ones when the last GOP is in (its length does not depend on them).
    header = Header(src.width, src.height, src.num_frames if known else gop_frames, src.fps, gop_frames,
                    num_gops or 1, config, init_file.digest if init_file else bytes(16), (coded_w, coded_h))
    try:
        decode_config = decode_header(encode_header(header))[0].config
    except BitstreamError as e:
        raise NervcError(f"cannot encode this video: {e}") from None
    init_arrays = base_arrays = None
    if init_file:
        init_arrays = {k: v.detach().float().cpu().numpy() for k, v in init_file.state.items()}
        base_arrays = {k: v.numpy() for k, v in init_state_for(init_file.state, grid_hw).items()}
    header_bpp = 8 * len(encode_header(header)) / (src.num_frames * src.width * src.height) if known else 0.0
    plan = GopPlan(config, decode_config, grid_hw, src.width, src.height, settings, device,
                   init_arrays, base_arrays, preset, given, header_bpp, coded_w, coded_h)
    own = _coded_gops(src, gop_frames, plan, jobs, rank, world, num_gops, progress and jobs == 1)

    try:  # closing the generators stops any worker processes at once on an error
        if rank != 0:
            _send_gops(own, link)
            return {}
        stream = _gather_gops(own, link, num_gops, gop_frames, src.num_frames, list(settings))
        try:
            done, seconds, sizes, (est_bits, lams, words, mses, rollbacks) = _write(
                stream, paths, header, known, src.path, num_gops, progress, start)
        finally:
            stream.close()
    finally:
        own.close()

    full, rest = divmod(done, gop_frames)
    fit_steps = full * plan.gop_steps(gop_frames) + (plan.gop_steps(rest) if rest else 0)
    total = time.perf_counter() - start
    results = {}
    for q, path in paths.items():
        if sizes[q] != os.path.getsize(path):
            raise NervcError("internal error: written size differs from the file size")
        overhead = sizes[q] - 4 * words[q]  # all but the ANS words
        results[q] = EncodeResult(str(path), sizes[q], src.width, src.height, done, src.fps,
                                  psnr_of_mse(np.concatenate(mses[q])), seconds,
                                  init_file.name if init_file else "random", q,
                                  overhead + int(math.ceil(est_bits[q] / 8)), lams[q], preset,
                                  fit_steps, total, coded_w, coded_h, rollbacks[q])
    return results


def encode(source: str | os.PathLike | Video, output: str | os.PathLike, *,
           quality: int = DEFAULT_QUALITY, **kwargs) -> EncodeResult | None:
    """Encode ``source`` (a path or a decoded Video) into the ``.nerv`` file ``output``.

    Keyword arguments are those of ``encode_ladder`` (steps, init, gop, frames, size, fps,
    seed, device, lr, batch, bpp, lam, progress, overwrite, jobs, distributed, preset, meta_lr,
    scale, tune; on a
    torch.distributed rank other than 0 this returns None).
    """
    return encode_ladder(source, {quality: output}, **kwargs).get(quality)
