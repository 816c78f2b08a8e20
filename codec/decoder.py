"""Bitstream -> frames: rebuild each needed GOP's network and run it in frame batches.

Weights are reconstructed on the CPU in float32 (so they are bit-identical on every machine)
and then moved to the decode device: CUDA when present (``device="auto"``), else the CPU.
Only the GOPs that hold the requested frames are read and decoded.

Hostile input: the reader validates every field before anything is allocated; then, before
any weight or frame buffer is made, the memory the requested decode needs (the output frames
plus one forward pass) is checked against a budget (``NERVC_DECODE_MEMORY``, default 3/4 of the
physical memory), and the batch is shrunk to fit. A NeRV stream can claim millions of frames
for a few bytes, so this is what stops a decompression bomb: the user gets one NervcError
suggesting ``--frames`` instead of an out-of-memory kill.
"""
from __future__ import annotations

import math
import os
import re
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from bitstreams import BitstreamError, BitstreamReader, GopRecord, Header
from codec.devices import pick_device
from codec.entropy import EntropyError, LaplaceModel, decode_tensors
from nervcore.errors import NervcError
from codec.inits import find_init
from nervcore.video_io import check_output, output_kind, write_video
from metanerv.model import NeRV, NeRVConfig, frame_times, init_state_for, upscale_frames

MEMORY_ENV = "NERVC_DECODE_MEMORY"
DECODE_BATCH = 8  # frames per forward pass (the encoder measures its PSNR with the same batches)


@dataclass
class DecodeResult:
    frames: np.ndarray | None  # uint8 [N, H, W, 3]; None when they were streamed into an output
    fps: Fraction
    first_frame: int
    decode_seconds: float  # the frames' decode, without the output's encoding and writing
    device: str
    num_frames: int = 0
    width: int = 0
    height: int = 0

    @property
    def fps_decoded(self) -> float:
        return self.num_frames / max(self.decode_seconds, 1e-9)


def decode_memory_limit() -> int:
    """Bytes a decode may plan to use: ``$NERVC_DECODE_MEMORY`` (e.g. ``512M``, ``8G``) or 3/4
    of the physical memory (8 GiB when that cannot be read)."""
    spec = os.environ.get(MEMORY_ENV, "").strip()
    if spec:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", spec.lower())
        if not m:
            raise NervcError(f"{MEMORY_ENV}={spec!r}: expected a size such as 512M or 8G")
        return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _gib(n: float) -> str:
    for unit, shift in (("PiB", 50), ("TiB", 40), ("GiB", 30)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n / (1 << 20):.1f} MiB"


def frame_activation_bytes(config: NeRVConfig, height: int, width: int) -> int:
    """Generous estimate of the float32 memory one frame needs in a forward pass.

    Per block: the input (and an im2col-sized copy of it, 9x) plus conv output, FiLM and GELU
    results at the block's output resolution; the largest block dominates.
    """
    s = config.total_stride
    ph, pw = -(-height // s) * s, -(-width // s) * s
    worst, c_in = 3 * 3 * ph * pw, config.grid_channels
    for j, (c, st) in enumerate(zip(config.channels, config.strides)):
        out_px = ph * pw // math.prod(config.strides[j + 1:]) ** 2
        in_px = out_px // (st * st)
        worst = max(worst, 10 * c_in * in_px + 4 * c * out_px)
        c_in = c
    return 4 * worst


def plan_memory(header: Header, num_frames: int, batch: int, path) -> int:
    """Check the decode fits the memory budget before allocating; returns the batch to use."""
    limit = decode_memory_limit()
    frames_bytes = num_frames * header.height * header.width * 3
    per_frame = frame_activation_bytes(header.config, header.coded_height, header.coded_width)
    if header.resized:  # the resize's float32 input, output and index/weight temporaries
        per_frame += 4 * 3 * (header.coded_height * header.coded_width + 3 * header.height * header.width)
    params = sum(math.prod(s) for _, s in _shapes(header)) * 4 * 4  # levels, weights, model, init
    if frames_bytes + params + per_frame > limit:
        hint = "; decode fewer frames with --frames a:b" if num_frames > 1 else ""
        raise NervcError(f"{path}: decoding {num_frames} frame(s) of {header.width}x{header.height} "
                         f"needs about {_gib(frames_bytes + params + per_frame)}, more than the "
                         f"decode memory limit of {_gib(limit)} (set {MEMORY_ENV} to change it){hint}")
    return max(1, min(batch, (limit - frames_bytes - params) // per_frame))


def _shapes(header: Header):
    from bitstreams.format import param_shapes
    return param_shapes(header.config, header.grid_hw)


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _describe_inits(paths: list[str] | None) -> str:
    """'a.safetensors (init 0123abcd...), b.safetensors (unreadable: why)' for an error message."""
    from metanerv.init_file import load_init
    if not paths:
        return "none given"
    out = []
    for p in paths[:8]:
        try:
            out.append(f"{p} (init {load_init(p).short_id})")
        except NervcError as e:
            out.append(f"{p} (unusable: {str(e).removeprefix(f'init {p}: ')[:100]})")
        except Exception as e:  # noqa: BLE001
            out.append(f"{p} (unusable: {type(e).__name__})")
    return ", ".join(out) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")


def init_state_for_header(header: Header, paths: list[str] | None, path) -> dict[str, Tensor]:
    """The init tensors (grid resized) a delta-coded stream refers to, found and checked.

    Init files are input too: the file with the right digest must also have the header's
    configuration and every decode tensor with the right shape, or the decode stops here with
    a NervcError naming the init.
    """
    want = header.init_digest.hex()[:16]
    try:
        init_file = find_init(header.init_digest, paths)
    except NervcError:
        raise NervcError(f"{path}: encoded with init {want}, which this decoder does not have "
                         f"(init files given: {_describe_inits(paths)}); pass that init file with "
                         f"--init PATH") from None
    except Exception as e:  # noqa: BLE001 - an unreadable init file must not crash the decoder
        raise NervcError(f"{path}: cannot load the init files ({type(e).__name__}: {e})") from None
    cfg = init_file.config
    if header.version >= 4:  # the stream may have its own anchors: the init's grid is resampled in time
        cfg = replace(cfg, grid_anchors=header.config.grid_anchors)
    try:
        same = replace(cfg, pe_base=_f32(cfg.pe_base)) == header.config  # the header stores an f32
    except (TypeError, ValueError, OverflowError, struct.error):
        same = False
    if not same:
        raise BitstreamError(f"{path}: init {init_file.name} has a different model configuration")
    state = init_file.state
    for name, shape in _shapes(header):
        t = state.get(name)
        ok = isinstance(t, Tensor) and t.is_floating_point() and t.dim() == len(shape)
        if ok and name == "grid":
            ok = (t.shape[1] == shape[1] and min(t.shape) >= 1
                  and (header.version >= 4 or t.shape[0] == shape[0]))
        elif ok:
            ok = tuple(t.shape) == shape
        if not ok:
            got = tuple(t.shape) if isinstance(t, Tensor) else "missing"
            raise NervcError(f"init {init_file.name}: tensor {name} is {got}, the model needs {shape}")
    try:
        return init_state_for({k: state[k] for k, _ in _shapes(header)}, header.grid_hw,
                              header.config.grid_anchors)
    except (RuntimeError, ValueError) as e:
        raise NervcError(f"init {init_file.name}: cannot use its grid ({e})") from None


def gop_weights(shapes: list[tuple[str, tuple[int, ...]]], gop: GopRecord,
                init: dict[str, Tensor] | None, where: str = "", marker: bool = True) -> dict[str, Tensor]:
    """Weights of one GOP record, float32 on the CPU: ``float32(level) * float32(step)``, plus
    the init's tensor when the stream has an init (SPEC.md "Reconstructing a tensor").

    ``shapes`` are the stream's decode tensors (``BitstreamReader.shapes``); the encoder calls
    this too, on the records it is about to write, to measure what the decoder will show.
    """
    models = [LaplaceModel(t.K, t.R) for t in gop.tensors]
    sizes = [math.prod(shape) for _, shape in shapes]
    try:
        levels = decode_tensors(gop.words, models, sizes, marker=marker)
    except EntropyError as e:
        raise BitstreamError(f"{where}: GOP at frame {gop.first_frame}: {e}") from None
    weights = {}
    for (name, shape), rec, lv in zip(shapes, gop.tensors, levels):
        w = torch.from_numpy(lv.astype(np.float32).reshape(shape)) * float(np.float32(rec.step))
        weights[name] = w + init[name] if init is not None else w
    return weights


def reconstruct_weights(reader: BitstreamReader, gop: GopRecord,
                        init: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """:func:`gop_weights` of a record read from ``reader``."""
    return gop_weights(reader.shapes, gop, init, str(reader.path), marker=reader.header.version >= 4)


def gop_model(config: NeRVConfig, grid_hw: tuple[int, int], weights: dict[str, Tensor]) -> NeRV:
    """The decode network holding ``weights``, on the CPU, in eval mode."""
    # Every decode tensor is overwritten, so skip the random initialisation (about 1 s for a
    # large model): build on the meta device, then give it uninitialised CPU storage. The
    # training-only auxiliary heads stay uninitialised; the decode never runs them.
    with torch.device("meta"):
        model = NeRV(config, grid_hw)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        params = dict(model.named_parameters())
        for k, v in weights.items():
            params[k].copy_(v)
    return model.eval()


def load_gop_model(reader: BitstreamReader, index: int, init_state: dict[str, Tensor] | None) -> NeRV:
    h = reader.header
    return gop_model(h.config, h.grid_hw, reconstruct_weights(reader, reader.read_gop(index), init_state))


@torch.no_grad()
def render(model: NeRV, indices: list[int], gop_frames: int, height: int, width: int,
           device: torch.device, batch: int = 8, out: np.ndarray | None = None,
           workers: int | None = None, coded_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Frames ``indices`` (within the GOP) as uint8 ``[n, H, W, 3]``, written into ``out``
    when given (a view of the caller's buffer: no second copy of the frames). The network
    draws ``coded_hw`` frames (default: the output size), resized to ``height x width``.

    On a CPU the frames of a batch are shared among ``workers`` threads (default: torch's
    thread count), each rendering whole frames on one core: this network's convolutions are
    too small to split well across cores (two threads inside each op: x1.3; two frames at
    once: x1.8 at CIF, benchmarks/results/decode_v2.md). The frames are the same either way:
    on a CPU the network draws one frame per call, because its float sums depend on how many
    frames a call holds (a batch of 2 and one of 4 flipped one 8-bit level of 60,480 with the
    d8680c0d init), which would tie the output to ``batch`` and the core count.
    """
    if out is None:
        out = np.empty((len(indices), height, width, 3), np.uint8)
    ch, cw = coded_hw or (height, width)
    if workers is None:
        workers = torch.get_num_threads() if device.type == "cpu" else 1

    def frames(rows: list[int]) -> None:
        for call in ([[r] for r in rows] if device.type == "cpu" else [rows]):
            y = model.render(frame_times([indices[r] for r in call], gop_frames).to(device))[:, :, :ch, :cw]
            y = upscale_frames(y, height, width)
            y = y.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for k, r in enumerate(call):
                out[r] = y[k]

    rows = list(range(len(indices)))
    if workers <= 1 or len(rows) <= 1:
        for i in range(0, len(rows), batch):
            frames(rows[i:i + batch])
        return out
    workers = min(workers, len(rows))
    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(workers, initializer=_one_thread_here) as pool:
            for i in range(0, len(rows), batch):
                part = rows[i:i + batch]
                list(pool.map(frames, [part[w::workers] for w in range(workers) if part[w::workers]]))
    finally:  # MKL's thread count is process-wide: give the caller back its own
        torch.set_num_threads(threads)
    return out


def _one_thread_here() -> None:
    """A render worker runs its ops on its own core (torch's thread count is per thread)."""
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)


def decode(path: str | os.PathLike, output: str | os.PathLike | None = None, *,
           frames: slice | None = None, device: str = "auto", init: list[str] | None = None,
           overwrite: bool = False, progress: bool = False, batch: int = DECODE_BATCH) -> DecodeResult:
    """Decode ``path``; write ``output`` (mp4/mkv/y4m/PNG folder, ``-``: y4m on stdout) when given.

    With an output the frames stream GOP by GOP into the writer (``frames`` of the result is
    None): memory holds one GOP's frames whatever the video's length, and the memory check
    bounds one GOP. Without one, every selected frame is returned in one array.
    """
    if output is not None:
        check_output(output, overwrite, folder=output_kind(output) == "png", inputs=[path])
    dev = pick_device(device)
    start = time.perf_counter()
    reader = BitstreamReader(path)
    h = reader.header
    sel = range(h.num_frames)[frames or slice(None)]
    if len(sel) == 0 or sel.step != 1:
        raise NervcError(f"frame range selects no frames of the {h.num_frames} in {path}")
    held = len(sel) if output is None else min(len(sel), h.gop_frames)
    batch = plan_memory(h, held, max(1, batch), path)
    init_state = init_state_for_header(h, init, path) if h.has_init else None
    timer = [0.0]
    chunks = _decoded_gops(reader, sel, init_state, dev, batch, progress, timer)
    if output is None:
        out = np.empty((len(sel), h.height, h.width, 3), np.uint8)
        i = 0
        for c in chunks:
            out[i:i + len(c)] = c
            i += len(c)
        return DecodeResult(out, h.fps, sel.start, time.perf_counter() - start, dev.type, len(sel), h.width, h.height)
    try:
        write_video(output, (f for c in chunks for f in c), h.fps, h.width, h.height, overwrite=overwrite)
    except BrokenPipeError:  # the reader of '-' went away: the CLI ends quietly
        raise
    except OSError as e:
        raise NervcError(f"{output}: cannot write ({e.strerror or e})") from None
    finally:
        chunks.close()
    return DecodeResult(None, h.fps, sel.start, timer[0], dev.type, len(sel), h.width, h.height)


def _decoded_gops(reader: BitstreamReader, sel: range, init_state, dev: torch.device, batch: int,
                  progress: bool, timer: list[float]) -> Iterator[np.ndarray]:
    """The selected frames, one GOP's uint8 ``[k, H, W, 3]`` at a time (``timer[0]`` adds up the
    seconds spent decoding, not those of whoever consumes the frames)."""
    h = reader.header
    gops = range(reader.gop_for_frame(sel.start), reader.gop_for_frame(sel.stop - 1) + 1)
    for g in tqdm(gops, desc="decode", unit="GOP", disable=not progress):
        t0 = time.perf_counter()
        sec = reader.sections[g]
        model = load_gop_model(reader, g, init_state).to(dev)
        lo, hi = max(sel.start, sec.first_frame), min(sel.stop, sec.first_frame + sec.num_frames)
        idx = [i - sec.first_frame for i in range(lo, hi)]
        out = np.empty((len(idx), h.height, h.width, 3), np.uint8)
        render(model, idx, sec.num_frames, h.height, h.width, dev, batch, out=out, coded_hw=h.coded_hw)
        del model
        if dev.type == "cuda":
            torch.cuda.synchronize()
        timer[0] += time.perf_counter() - t0
        yield out
