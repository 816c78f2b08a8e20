"""Bitstream -> frames: rebuild each needed GOP's network and run it in frame batches.

Weights are reconstructed on the CPU in float32 (so they are bit-identical on every machine)
and then moved to the decode device: CUDA when present (``device="auto"``), else the CPU.
Only the GOPs that hold the requested frames are read and decoded.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from bitstreams import BitstreamError, BitstreamReader, GopRecord
from codec.entropy import EntropyError, decode_levels
from codec.errors import NervcError
from codec.inits import find_init
from codec.quantize import dequantize
from codec.video_io import check_output, write_video
from metanerv.model import NeRV, build_model, frame_times, init_state_for


@dataclass
class DecodeResult:
    frames: np.ndarray  # uint8 [N, H, W, 3]
    fps: Fraction
    first_frame: int
    decode_seconds: float
    device: str

    @property
    def fps_decoded(self) -> float:
        return self.frames.shape[0] / max(self.decode_seconds, 1e-9)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise NervcError("--device cuda requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise NervcError(f"unknown device {device!r} (auto, cpu or cuda)")
    return torch.device(device)


def reconstruct_weights(reader: BitstreamReader, gop: GopRecord,
                        init: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """Dequantized weights (base + residual) of one GOP, float32 on the CPU."""
    weights = {}
    for (name, shape), rec in zip(reader.shapes, gop.tensors):
        try:
            levels = decode_levels(rec.sym_lo, rec.counts, rec.words, rec.numel)
        except EntropyError as e:
            raise BitstreamError(f"{reader.path}: GOP at frame {gop.first_frame}, tensor {name}: {e}") from None
        q = torch.from_numpy(levels.reshape(shape))
        w = dequantize(q, torch.from_numpy(rec.scales.astype(np.float32)))
        if rec.mode == 1:
            w = w + init[name]
        weights[name] = w
    return weights


def load_gop_model(reader: BitstreamReader, index: int, init_state: dict[str, Tensor] | None) -> NeRV:
    h = reader.header
    gop = reader.read_gop(index)
    model = build_model(h.config, h.grid_hw)
    weights = reconstruct_weights(reader, gop, init_state)
    with torch.no_grad():
        params = dict(model.named_parameters())
        for k, v in weights.items():
            params[k].copy_(v)
    return model.eval()


@torch.no_grad()
def render(model: NeRV, indices: list[int], gop_frames: int, height: int, width: int,
           device: torch.device, batch: int = 8) -> np.ndarray:
    """Frames ``indices`` (within the GOP) as uint8 ``[n, H, W, 3]``."""
    out = np.empty((len(indices), height, width, 3), np.uint8)
    for i in range(0, len(indices), batch):
        idx = indices[i:i + batch]
        y = model(frame_times(idx, gop_frames).to(device))[:, :, :height, :width]
        out[i:i + len(idx)] = y.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return out


def decode(path: str | os.PathLike, output: str | os.PathLike | None = None, *,
           frames: slice | None = None, device: str = "auto", init: list[str] | None = None,
           overwrite: bool = False, progress: bool = False, batch: int = 8) -> DecodeResult:
    """Decode ``path``; write ``output`` (mp4/mkv/y4m/PNG folder) when given."""
    if output is not None:
        check_output(output, overwrite)
    dev = pick_device(device)
    start = time.perf_counter()
    reader = BitstreamReader(path)
    h = reader.header
    sel = range(h.num_frames)[frames or slice(None)]
    if len(sel) == 0 or sel.step != 1:
        raise NervcError(f"frame range selects no frames of the {h.num_frames} in {path}")
    init_state = None
    if h.has_init:
        init_file = find_init(h.init_digest, init)
        if init_file.config != h.config:
            raise BitstreamError(f"{path}: init {init_file.name} has a different model configuration")
        init_state = init_state_for(init_file.state, h.grid_hw)
    chunks = []
    gops = range(reader.gop_for_frame(sel.start), reader.gop_for_frame(sel.stop - 1) + 1)
    for g in tqdm(gops, desc="decode", unit="GOP", disable=not progress):
        sec = reader.sections[g]
        model = load_gop_model(reader, g, init_state).to(dev)
        lo, hi = max(sel.start, sec.first_frame), min(sel.stop, sec.first_frame + sec.num_frames)
        idx = [i - sec.first_frame for i in range(lo, hi)]
        chunks.append(render(model, idx, sec.num_frames, h.height, h.width, dev, batch))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    result = DecodeResult(np.concatenate(chunks), h.fps, sel.start, time.perf_counter() - start, dev.type)
    if output is not None:
        write_video(output, result.frames, h.fps, h.width, h.height, overwrite=overwrite)
    return result
