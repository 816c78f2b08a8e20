"""Video -> ``.nerv``: per GOP, fit a network from the init by rate-distortion optimisation,
then entropy-code its integer levels.

``encode_ladder`` writes several rungs of the quality ladder from one shared fit prefix (the
schedule's stable phase, see ``codec.finetune.wsd_lr``). The reported PSNR is measured on frames decoded from the file
just written, and the reported size is that file's length: nothing is estimated.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
from tqdm import tqdm

from bitstreams import GopRecord, Header, TensorRecord, write_bitstream
from bitstreams.format import MAX_DIM
from codec.decoder import decode, pick_device
from codec.entropy import encode_tensors, fit_laplace, model_bits
from codec.finetune import (CodedGop, FitSettings, branch, decay_start, finish_fit, frames_to_tensor,
                            run_fit, start_fit)
from codec.inits import resolve_init
from codec.ladder import DEFAULT_GOP, DEFAULT_QUALITY, LADDER
from codec.presets import DEFAULT_PRESET, check_preset, fit_overrides
from nervcore.errors import NervcError
from nervcore.video_io import Video, check_output, read_video
from metanerv.init_file import InitFile
from metanerv.model import NeRVConfig, build_model, grid_size_for, init_state_for, pad_to_stride


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

    @property
    def bpp(self) -> float:
        return 8.0 * self.num_bytes / (self.width * self.height * self.num_frames)


def rgb_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames: mean over frames of the per-frame MSE, then dB."""
    mse = float(np.mean([np.mean((x.astype(np.float32) - y.astype(np.float32)) ** 2, dtype=np.float64)
                         for x, y in zip(a, b)]))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def _settings(quality: int, steps: int | None, seed: int, lr: float | None, batch: int | None,
              bpp: float | None, lam: float | None) -> FitSettings:
    """Steps, lr and batch left None come from the preset, per GOP (FitSettings' meanwhile)."""
    if quality not in LADDER:
        raise NervcError(f"quality {quality} not in {sorted(LADDER)}")
    given = {k: v for k, v in {"steps": steps, "lr": lr, "batch": batch}.items() if v is not None}
    s = FitSettings(seed=seed, lam=LADDER[quality].lam if lam is None else lam, target_bpp=bpp, **given)
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


def encode_ladder(source: str | os.PathLike | Video, outputs: dict[int, str | os.PathLike], *,
                  steps: int | None = None, init: str | os.PathLike | InitFile | None = "default",
                  gop: int | None = None, frames: slice | None = None,
                  size: tuple[int, int] | None = None, fps: Fraction | None = None, seed: int = 0,
                  device: str = "cpu", lr: float | None = None, batch: int | None = None,
                  bpp: float | None = None, lam: float | None = None, progress: bool = True,
                  overwrite: bool = False, preset: str = DEFAULT_PRESET) -> dict[int, EncodeResult]:
    """Encode ``source`` once per quality in ``outputs`` ({quality: path}).

    With several rungs, they share the stable phase of the fitting schedule (at the geometric
    mean of their rate weights) and each runs the decay phase with its own; ``bpp`` (one output
    only) steers the rate weight to hit that many bits per pixel. ``preset``
    (``codec.presets``) sets each GOP's steps, batch and lr from its size; ``steps``, ``batch``
    and ``lr`` given explicitly win over it.
    """
    if not outputs:
        raise NervcError("no output requested")
    if bpp is not None and len(outputs) > 1:
        raise NervcError("--bpp sets one rate: ask for one output")
    check_preset(preset)
    settings = {q: _settings(q, steps, seed, lr, batch, bpp, lam) for q in outputs}
    paths = {q: check_output(p, overwrite) for q, p in outputs.items()}
    dev = pick_device(device)
    start = time.perf_counter()
    video = source if isinstance(source, Video) else read_video(source, size=size, fps=fps, frames=frames)
    if video.width > MAX_DIM or video.height > MAX_DIM:
        raise NervcError(f"frame size {video.width}x{video.height} exceeds {MAX_DIM}")
    if gop is not None and gop < 1:
        raise NervcError("--gop must be >= 1")
    init_file = resolve_init(init)
    config = init_file.config if init_file else NeRVConfig()
    gop_frames = min(gop or DEFAULT_GOP, video.num_frames)
    grid_hw = grid_size_for(video.height, video.width, config)
    init_state = init_state_for(init_file.state, grid_hw) if init_file else None
    first_s = next(iter(settings.values()))
    shared_lam = min(s.lam for s in settings.values())

    records: dict[int, list[GopRecord]] = {q: [] for q in outputs}
    est_bits = {q: 0.0 for q in outputs}
    lams = {q: 0.0 for q in outputs}
    fit_steps = {q: 0 for q in outputs}
    starts = list(range(0, video.num_frames, gop_frames))
    for gi, first in enumerate(tqdm(starts, desc="encode", unit="GOP", disable=not progress or len(starts) == 1)):
        chunk = video.frames[first:first + gop_frames]
        pixels = chunk.shape[0] * video.width * video.height
        target = pad_to_stride(frames_to_tensor(chunk), config.total_stride).to(dev)
        model = build_model(config, grid_hw, init_file.state if init_file else None, seed=seed + gi).to(dev)
        base = {k: v.to(dev) for k, v in init_state.items()} if init_state else None
        label = f" GOP {gi + 1}/{len(starts)}" if len(starts) > 1 else ""
        gop_fit = fit_overrides(preset, video.width, video.height, chunk.shape[0], config.total_stride,
                                given={"steps": steps, "batch": batch, "lr": lr})
        common = replace(first_s, seed=seed + gi, lam=shared_lam, **gop_fit)
        state = start_fit(model, base, common)
        prefix = decay_start(common) if len(settings) > 1 else common.steps
        run_fit(model, target, base, state, common, prefix, pixels, progress, f"fit{label}")
        for q, s in settings.items():
            s = replace(s, seed=seed + gi, **gop_fit)
            fit_steps[q] += s.steps
            mine = state
            if len(settings) > 1:  # branch off the shared stable phase with this rung's lam
                mine = branch(state)
                mine.lam = s.lam
            run_fit(model, target, base, mine, s, s.steps, pixels, progress,
                    f"fit{label}" + (f" q{q}" if len(settings) > 1 else ""))
            record, bits = gop_record(finish_fit(mine), first, chunk.shape[0])
            records[q].append(record)
            est_bits[q] += bits
            lams[q] = mine.lam
    seconds = time.perf_counter() - start

    header = Header(video.width, video.height, video.num_frames, video.fps, gop_frames, len(starts),
                    config, init_file.digest if init_file else bytes(16))
    results = {}
    for q, path in paths.items():
        num_bytes = write_bitstream(path, header, records[q])
        overhead = num_bytes - sum(4 * len(g.words) for g in records[q])  # all but the ANS words
        try:
            decoded = decode(path, None, device="cpu", init=[init_file] if init_file else None)
        except NervcError:
            if os.path.exists(path):
                os.unlink(path)
            raise
        if num_bytes != os.path.getsize(path):
            raise NervcError("internal error: written size differs from the file size")
        results[q] = EncodeResult(str(path), num_bytes, video.width, video.height, video.num_frames,
                                  video.fps, rgb_psnr(decoded.frames, video.frames), seconds,
                                  init_file.name if init_file else "random", q,
                                  overhead + int(math.ceil(est_bits[q] / 8)), lams[q], preset,
                                  fit_steps[q], time.perf_counter() - start)
    return results


def encode(source: str | os.PathLike | Video, output: str | os.PathLike, *,
           quality: int = DEFAULT_QUALITY, **kwargs) -> EncodeResult:
    """Encode ``source`` (a path or a decoded Video) into the ``.nerv`` file ``output``.

    Keyword arguments are those of ``encode_ladder`` (steps, init, gop, frames, size, fps,
    seed, device, lr, batch, bpp, lam, progress, overwrite, preset).
    """
    return encode_ladder(source, {quality: output}, **kwargs)[quality]
