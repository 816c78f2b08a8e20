"""Video -> ``.nerv``: per GOP, fit a network from the init, then prune, quantize and code it.

The reported PSNR is measured on frames decoded from the file just written, and the reported
size is that file's length: nothing is estimated.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from tqdm import tqdm

from bitstreams import GopRecord, Header, TensorRecord, write_bitstream
from codec.decoder import decode
from codec.entropy import encode_levels
from codec.errors import NervcError
from codec.finetune import FitSettings, fit_gop, frames_to_tensor
from codec.inits import resolve_init
from codec.ladder import DEFAULT_GOP, DEFAULT_QUALITY, LADDER
from codec.video_io import Video, check_output, read_video
from metanerv.init_file import InitFile
from metanerv.model import NeRVConfig, build_model, grid_size_for, init_state_for, pad_to_stride
from bitstreams.format import MAX_DIM, MIN_BITS, MAX_BITS


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

    @property
    def bpp(self) -> float:
        return 8.0 * self.num_bytes / (self.width * self.height * self.num_frames)


def rgb_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames: mean over frames of the per-frame MSE, then dB."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(a.shape[0], -1).mean(axis=1).mean()
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def encode(source: str | os.PathLike | Video, output: str | os.PathLike, *,
           quality: int = DEFAULT_QUALITY, steps: int | None = None, bits: int | None = None,
           prune: float | None = None, init: str | os.PathLike | InitFile | None = "default",
           gop: int | None = None, frames: slice | None = None, size: tuple[int, int] | None = None,
           fps: Fraction | None = None, seed: int = 0, device: str = "cpu", lr: float = 5e-3,
           batch: int = 8, progress: bool = True, overwrite: bool = False) -> EncodeResult:
    """Encode ``source`` (a path or a decoded Video) into the ``.nerv`` file ``output``."""
    if quality not in LADDER:
        raise NervcError(f"quality {quality} not in {sorted(LADDER)}")
    rung = LADDER[quality]
    settings = FitSettings(steps=rung.steps if steps is None else steps, bits=bits or rung.bits,
                           prune=rung.prune if prune is None else prune, seed=seed, lr=lr, batch=batch)
    if not MIN_BITS <= settings.bits <= MAX_BITS:
        raise NervcError(f"--bits {settings.bits} out of range [{MIN_BITS}, {MAX_BITS}]")
    if not 0.0 <= settings.prune < 1.0:
        raise NervcError(f"--prune {settings.prune} must be in [0, 1)")
    if settings.steps < 0:
        raise NervcError("--steps must be >= 0")
    out = check_output(output, overwrite)
    start = time.perf_counter()
    video = source if isinstance(source, Video) else read_video(source, size=size, fps=fps, frames=frames)
    if video.width > MAX_DIM or video.height > MAX_DIM:
        raise NervcError(f"frame size {video.width}x{video.height} exceeds {MAX_DIM}")
    init_file = resolve_init(init)
    config = init_file.config if init_file else NeRVConfig()
    gop_frames = min(gop or DEFAULT_GOP, video.num_frames)
    if gop_frames < 1:
        raise NervcError("--gop must be >= 1")
    grid_hw = grid_size_for(video.height, video.width, config)
    init_state = init_state_for(init_file.state, grid_hw) if init_file else None
    dev = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))

    records = []
    starts = list(range(0, video.num_frames, gop_frames))
    for gi, first in enumerate(tqdm(starts, desc="encode", unit="GOP", disable=not progress or len(starts) == 1)):
        chunk = video.frames[first:first + gop_frames]
        target = pad_to_stride(frames_to_tensor(chunk), config.total_stride).to(dev)
        model = build_model(config, grid_hw, init_file.state if init_file else None, seed=seed + gi).to(dev)
        gop_init = {k: v.to(dev) for k, v in init_state.items()} if init_state else None
        label = f" GOP {gi + 1}/{len(starts)}" if len(starts) > 1 else ""
        coded = fit_gop(model, target, gop_init, settings, progress=progress, label=label)
        tensors = []
        for ct in coded:
            lo, counts, words = encode_levels(ct.levels.numpy())
            tensors.append(TensorRecord(ct.mode, ct.bits, tuple(ct.levels.shape),
                                        ct.scales.numpy().astype(np.float16), lo, counts, words))
        records.append(GopRecord(first, chunk.shape[0], tensors))

    header = Header(video.width, video.height, video.num_frames, video.fps, gop_frames, len(records),
                    config, init_file.digest if init_file else bytes(32))
    num_bytes = write_bitstream(out, header, records)
    seconds = time.perf_counter() - start
    extra = [init] if init_file and not isinstance(init, (InitFile, type(None))) and str(init) not in ("default",) else None
    try:
        decoded = decode(out, None, device="cpu", init=extra if extra else None,
                         **({} if not isinstance(init, InitFile) else {}))
    except NervcError:
        if os.path.exists(out):
            os.unlink(out)
        raise
    if num_bytes != os.path.getsize(out):
        raise NervcError("internal error: written size differs from the file size")
    return EncodeResult(str(out), os.path.getsize(out), video.width, video.height, video.num_frames,
                        video.fps, rgb_psnr(decoded.frames, video.frames), seconds,
                        init_file.name if init_file else "random")
