"""Video -> ``.nerv``: per GOP, fit a network from the init, then prune, quantize and code it.

``encode_ladder`` writes several rungs of the quality ladder from one fine-tuning run (rungs
differ only in pruning and quantization). The reported PSNR is measured on frames decoded from
the file just written, and the reported size is that file's length: nothing is estimated.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import torch
from tqdm import tqdm

from bitstreams import GopRecord, Header, TensorRecord, write_bitstream
from bitstreams.format import MAX_BITS, MAX_DIM, MIN_BITS
from codec.decoder import decode
from codec.entropy import encode_levels
from nervcore.errors import NervcError
from codec.finetune import FitSettings, code_weights, fit_weights, frames_to_tensor
from codec.inits import resolve_init
from codec.ladder import DEFAULT_GOP, DEFAULT_QUALITY, DEFAULT_STEPS, LADDER
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

    @property
    def bpp(self) -> float:
        return 8.0 * self.num_bytes / (self.width * self.height * self.num_frames)


def rgb_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames: mean over frames of the per-frame MSE, then dB."""
    mse = float(np.mean([np.mean((x.astype(np.float32) - y.astype(np.float32)) ** 2, dtype=np.float64)
                         for x, y in zip(a, b)]))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def _rung_settings(quality: int, steps: int | None, bits: int | None, prune: float | None,
                   seed: int, lr: float, batch: int) -> FitSettings:
    if quality not in LADDER:
        raise NervcError(f"quality {quality} not in {sorted(LADDER)}")
    rung = LADDER[quality]
    s = FitSettings(steps=DEFAULT_STEPS if steps is None else steps, bits=bits or rung.bits,
                    prune=rung.prune if prune is None else prune, seed=seed, lr=lr, batch=batch)
    if not MIN_BITS <= s.bits <= MAX_BITS:
        raise NervcError(f"--bits {s.bits} out of range [{MIN_BITS}, {MAX_BITS}]")
    if not 0.0 <= s.prune < 1.0:
        raise NervcError(f"--prune {s.prune} must be in [0, 1)")
    if s.steps < 0:
        raise NervcError("--steps must be >= 0")
    if s.batch < 1:
        raise NervcError("--batch must be >= 1")
    return s


def encode_ladder(source: str | os.PathLike | Video, outputs: dict[int, str | os.PathLike], *,
                  steps: int | None = None, bits: int | None = None, prune: float | None = None,
                  init: str | os.PathLike | InitFile | None = "default", gop: int | None = None,
                  frames: slice | None = None, size: tuple[int, int] | None = None,
                  fps: Fraction | None = None, seed: int = 0, device: str = "cpu", lr: float = 5e-3,
                  batch: int = 8, progress: bool = True, overwrite: bool = False) -> dict[int, EncodeResult]:
    """Encode ``source`` once per quality in ``outputs`` ({quality: path}) from one fit."""
    if not outputs:
        raise NervcError("no output requested")
    settings = {q: _rung_settings(q, steps, bits, prune, seed, lr, batch) for q in outputs}
    paths = {q: check_output(p, overwrite) for q, p in outputs.items()}
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
    dev = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    fit_settings = next(iter(settings.values()))

    records: dict[int, list[GopRecord]] = {q: [] for q in outputs}
    coding_seconds = {q: 0.0 for q in outputs}
    starts = list(range(0, video.num_frames, gop_frames))
    for gi, first in enumerate(tqdm(starts, desc="encode", unit="GOP", disable=not progress or len(starts) == 1)):
        chunk = video.frames[first:first + gop_frames]
        target = pad_to_stride(frames_to_tensor(chunk), config.total_stride).to(dev)
        model = build_model(config, grid_hw, init_file.state if init_file else None, seed=seed + gi).to(dev)
        gop_init = {k: v.to(dev) for k, v in init_state.items()} if init_state else None
        label = f" GOP {gi + 1}/{len(starts)}" if len(starts) > 1 else ""
        weights = fit_weights(model, target, replace(fit_settings, seed=seed + gi), progress, label)
        for q, s in settings.items():
            t0 = time.perf_counter()
            coded = code_weights(model, target, weights, gop_init, replace(s, seed=seed + gi),
                                 progress, label + (f" q{q}" if len(settings) > 1 else ""))
            tensors = []
            for ct in coded:
                lo, counts, words = encode_levels(ct.levels.numpy())
                tensors.append(TensorRecord(ct.mode, ct.bits, tuple(ct.levels.shape),
                                            ct.scales.numpy().astype(np.float16), lo, counts, words))
            records[q].append(GopRecord(first, chunk.shape[0], tensors))
            coding_seconds[q] += time.perf_counter() - t0
    fit_seconds = time.perf_counter() - start - sum(coding_seconds.values())

    header = Header(video.width, video.height, video.num_frames, video.fps, gop_frames, len(starts),
                    config, init_file.digest if init_file else bytes(32))
    results = {}
    for q, path in paths.items():
        t0 = time.perf_counter()
        num_bytes = write_bitstream(path, header, records[q])
        seconds = fit_seconds + coding_seconds[q] + time.perf_counter() - t0
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
                                  init_file.name if init_file else "random", q)
    return results


def encode(source: str | os.PathLike | Video, output: str | os.PathLike, *,
           quality: int = DEFAULT_QUALITY, **kwargs) -> EncodeResult:
    """Encode ``source`` (a path or a decoded Video) into the ``.nerv`` file ``output``.

    Keyword arguments are those of ``encode_ladder`` (steps, bits, prune, init, gop, frames,
    size, fps, seed, device, lr, batch, progress, overwrite).
    """
    return encode_ladder(source, {quality: output}, **kwargs)[quality]
