"""A second ``.nerv`` decoder, written from ``bitstreams/SPEC.md`` alone.

It shares no code with ``bitstreams/format.py`` or ``codec/``: its own byte parser, its own
entropy-model tables, its own init loading and grid resize, and the network in float32 numpy
(no torch). The conformance checker (``bitstreams/conform.py``) uses it as the reference that
the conformance expectations come from, so a disagreement with ``codec.decode`` shows up as a
disagreement between two independent readings of SPEC.md.

    python -m bitstreams.refdecoder IN.nerv OUT.rgb [--init PATH ...]

writes the decoded frames as raw RGB (uint8, frame after frame, row-major).

Library use: :func:`decode` (frames ``[N, H, W, 3]`` uint8), :func:`weights` (one GOP's
reconstructed float32 weights, canonical order), :func:`parse` (header and section records).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from nervcore.atomic import atomic_output
from nervcore.errors import NervcError

SHIPPED_INITS = Path(__file__).resolve().parents[1] / "metanerv" / "inits"

MAX_FILE = 2 ** 31
MAX_GRID = 32_000_000
MAX_PARAMS = 32_000_000
MAX_COST = 1_000_000
MAX_K = 32767
MAX_INIT_BYTES = 256 * 1024 * 1024


class BitstreamError(NervcError):
    """The file breaks SPEC.md (one line, naming the file and the field/section/tensor)."""


# --------------------------------------------------------------------------------------------
# header

@dataclass(frozen=True)
class Header:
    version: tuple[int, int]
    header_length: int
    width: int
    height: int
    num_frames: int
    fps_num: int
    fps_den: int
    gop_frames: int
    num_gops: int
    init_id: bytes
    pe_freqs: int
    pe_base: np.float32
    embed_dim: int
    grid_channels: int
    grid_anchors: int
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    coded_width: int
    coded_height: int

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def has_init(self) -> bool:
        return any(self.init_id)

    @property
    def total_stride(self) -> int:
        return math.prod(self.strides)

    @property
    def grid_size(self) -> tuple[int, int]:
        s = self.total_stride
        return -(-self.coded_height // s), -(-self.coded_width // s)

    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Canonical tensors and their shapes (SPEC "Tensors, in this canonical order")."""
        gh, gw = self.grid_size
        e, f2 = self.embed_dim, 2 * self.pe_freqs
        out = [("grid", (self.grid_anchors, self.grid_channels, gh, gw)),
               ("mlp.0.weight", (e, f2)), ("mlp.0.bias", (e,)),
               ("mlp.2.weight", (e, e)), ("mlp.2.bias", (e,))]
        c_in = self.grid_channels
        for j, (c, s) in enumerate(zip(self.channels, self.strides)):
            out += [(f"blocks.{j}.conv.weight", (c * s * s, c_in, 3, 3)),
                    (f"blocks.{j}.conv.bias", (c * s * s,)),
                    (f"blocks.{j}.film.weight", (2 * c, e)),
                    (f"blocks.{j}.film.bias", (2 * c,))]
            c_in = c
        out += [("head.weight", (3, c_in, 3, 3)), ("head.bias", (3,))]
        return out

    def gop_range(self, g: int) -> range:
        return range(g * self.gop_frames, min((g + 1) * self.gop_frames, self.num_frames))


def _u(data: bytes, fmt: str, off: int):
    return struct.unpack_from("<" + fmt, data, off)[0]


def parse_header(data: bytes, name: str = "<bytes>") -> Header:
    """Validate and read the header (SPEC "Header" and "Limits")."""
    size = len(data)

    def bad(msg: str) -> BitstreamError:
        return BitstreamError(f"{name}: {msg}")

    if not 1 <= size <= MAX_FILE:
        raise bad(f"file size {size} bytes is outside 1..2^31")
    if size < 8:
        raise bad(f"truncated header: the file has only {size} bytes")
    if data[:4] != b"NERV":
        raise bad(f"not a .nerv file (magic {data[:4]!r})")
    major, minor = data[4], data[5]
    if major == 1:
        raise bad("version 1.0 (nervc 0.1) is no longer supported; re-encode the video")
    if major not in (2, 3, 4):
        if 5 <= major <= 15:
            raise bad(f"version {major}.{minor} is not supported by this decoder (2.x to 4.x): a newer "
                      "nervc wrote it; upgrade nervc")
        raise bad(f"version {major}.{minor} after the magic is no version nervc wrote (corrupt file)")
    if size < 59:
        raise bad(f"truncated header: the file has only {size} bytes")
    n_blocks = data[58]
    if not 1 <= n_blocks <= 8:
        raise bad(f"header field n_blocks = {n_blocks} is outside 1..8")
    hlen = _u(data, "H", 6)
    fixed = 59 if major == 2 else 63  # versions 3 and 4: coded_width, coded_height at 59
    if hlen != fixed + 3 * n_blocks:
        raise bad(f"header field header_length = {hlen}, must be {fixed} + 3*n_blocks = {fixed + 3 * n_blocks}")
    if size < hlen + 4:
        raise bad(f"truncated header: {size} bytes, the header needs {hlen + 4}")
    crc = _u(data, "I", hlen)
    if zlib.crc32(data[:hlen]) != crc:
        raise bad("header CRC mismatch (the header is corrupted)")

    channels = tuple(_u(data, "H", fixed + 2 * j) for j in range(n_blocks))
    strides = tuple(data[fixed + 2 * n_blocks + j] for j in range(n_blocks))
    width, height = _u(data, "H", 8), _u(data, "H", 10)
    coded = (_u(data, "H", 59), _u(data, "H", 61)) if major >= 3 else (width, height)
    h = Header(
        version=(major, minor), header_length=hlen,
        width=width, height=height, num_frames=_u(data, "I", 12),
        fps_num=_u(data, "I", 16), fps_den=_u(data, "I", 20), gop_frames=_u(data, "I", 24),
        num_gops=_u(data, "I", 28), init_id=bytes(data[32:48]), pe_freqs=data[48],
        pe_base=np.frombuffer(data, "<f4", 1, 49)[0], embed_dim=_u(data, "H", 53),
        grid_channels=_u(data, "H", 55), grid_anchors=data[57], channels=channels,
        strides=strides, coded_width=coded[0], coded_height=coded[1])

    def field(fname: str, value, lo, hi) -> None:
        if not lo <= value <= hi:
            raise bad(f"header field {fname} = {value} is outside {lo}..{hi}")

    field("width", h.width, 1, 16384)
    field("height", h.height, 1, 16384)
    field("coded_width", h.coded_width, 1, h.width)
    field("coded_height", h.coded_height, 1, h.height)
    field("num_frames", h.num_frames, 1, 10_000_000)
    field("fps_num", h.fps_num, 1, 1_000_000)
    field("fps_den", h.fps_den, 1, 1_000_000)
    field("gop_frames", h.gop_frames, 1, h.num_frames)
    want_gops = -(-h.num_frames // h.gop_frames)
    if h.num_gops != want_gops:
        raise bad(f"header field num_gops = {h.num_gops}, must be ceil(num_frames / gop_frames) = {want_gops}")
    field("num_gops", h.num_gops, 1, 1_000_000)
    field("pe_freqs", h.pe_freqs, 1, 64)
    if not (math.isfinite(float(h.pe_base)) and 1.0 <= float(h.pe_base) <= 4.0):
        raise bad(f"header field pe_base = {float(h.pe_base)} is not a finite value in 1.0..4.0")
    field("embed_dim", h.embed_dim, 1, 1024)
    field("grid_channels", h.grid_channels, 1, 256)
    field("grid_anchors", h.grid_anchors, 1, 255 if major >= 4 else 64)
    for j in range(n_blocks):
        field(f"channels[{j}]", channels[j], 1, 1024)
        field(f"strides[{j}]", strides[j], 1, 8)

    shapes = h.shapes()
    n_tensors = len(shapes)
    if (_min_section(h) + 9) * h.num_gops > size - (hlen + 4):
        raise bad(f"num_gops = {h.num_gops} sections cannot fit in the {size - hlen - 4} bytes "
                  "after the header (truncated?)")
    gh, gw = h.grid_size
    if h.grid_anchors * h.grid_channels * gh * gw > MAX_GRID:
        raise bad(f"grid of {h.grid_anchors}x{h.grid_channels}x{gh}x{gw} exceeds {MAX_GRID} values")
    params = sum(math.prod(s) for _, s in shapes)
    if params > MAX_PARAMS:
        raise bad(f"the model has {params} parameters, more than {MAX_PARAMS}")
    cost = Fraction(27 * channels[-1])
    c_in = h.grid_channels
    for j, (c, s) in enumerate(zip(channels, strides)):
        cost += Fraction(c_in * c * 9 * s * s, math.prod(strides[j:]) ** 2)
        c_in = c
    if cost > MAX_COST:
        raise bad(f"decode cost {float(cost):.0f} MACs per output pixel exceeds {MAX_COST}")
    return h


# --------------------------------------------------------------------------------------------
# sections

@dataclass(frozen=True)
class TensorRecord:
    name: str
    shape: tuple[int, ...]
    step: np.float32
    K: int
    R: int | None


@dataclass(frozen=True)
class Section:
    index: int
    offset: int  # of the section header
    records: tuple[TensorRecord, ...]
    words: np.ndarray  # uint32


@dataclass(frozen=True)
class Stream:
    name: str
    size: int
    header: Header
    sections: tuple[Section, ...]


def _min_section(h: Header) -> int:
    """Fewest payload bytes of a GOP section: 3 per tensor record, the word count (version 4:
    the GOP's identity and at least the one word of the end marker)."""
    return 3 * len(h.shapes()) + 4 + (12 + 4 if h.version[0] >= 4 else 0)


def _parse_payload(payload: bytes, g: int, header: Header, bad) -> tuple[tuple[TensorRecord, ...], np.ndarray]:
    pos, n = 0, len(payload)
    records = []
    v4 = header.version[0] >= 4
    if v4:
        index, first, count = struct.unpack_from("<III", payload, 0)
        pos = 12
        span = header.gop_range(g)
        if index != g:
            raise bad(f"section {g} holds GOP {index}: sections swapped, lost or repeated")
        if (first, count) != (span.start, len(span)):
            raise bad(f"section {g} declares frames {first}..{first + count - 1}, the header puts "
                      f"frames {span.start}..{span.stop - 1} there")
    for tname, shape in header.shapes():
        where = f"GOP {g} tensor {tname}"
        if pos + 2 > n:
            raise bad(f"{where}: record runs past the end of the section")
        step = np.frombuffer(payload, "<f2", 1, pos)[0].astype(np.float32)
        pos += 2
        if not (np.isfinite(step) and step >= 0):
            raise bad(f"{where}: step {float(step)} is not finite and >= 0")
        k = shift = 0
        for i in range(6):
            if i == 5:
                raise bad(f"{where}: K varint longer than 5 bytes")
            if pos >= n:
                raise bad(f"{where}: record runs past the end of the section")
            b = payload[pos]
            pos += 1
            k |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if k > MAX_K:
            raise bad(f"{where}: K = {k} exceeds {MAX_K}")
        r = None
        if k > 0:
            if pos + 2 > n:
                raise bad(f"{where}: record runs past the end of the section")
            r = _u(payload, "H", pos)
            pos += 2
        records.append(TensorRecord(tname, shape, step, k, r))
    if pos + 4 > n:
        raise bad(f"GOP {g}: n_words runs past the end of the section")
    n_words = _u(payload, "I", pos)
    pos += 4
    if 4 * n_words > n - pos:
        raise bad(f"GOP {g}: n_words = {n_words} needs {4 * n_words} bytes, the section has {n - pos} left")
    coded = sum(math.prod(t.shape) for t in records if t.K > 0)
    if v4:
        most = -(-(24 * coded + 16 + 64) // 32)
        if not 1 <= n_words <= most:
            raise bad(f"GOP {g}: n_words = {n_words} is outside 1..{most} for {coded} coded levels "
                      "and the end marker")
    else:
        most = -(-(24 * coded + 64) // 32)
        if coded == 0 and n_words != 0:
            raise bad(f"GOP {g}: n_words = {n_words} but no tensor is coded (must be 0)")
        if coded > 0 and n_words > most:
            raise bad(f"GOP {g}: n_words = {n_words} is outside 0..{most} for {coded} coded levels")
    if 4 * n_words != n - pos:
        raise bad(f"GOP {g}: {n - pos - 4 * n_words} unused bytes at the end of the section payload")
    words = np.frombuffer(payload, "<u4", n_words, pos).astype(np.uint32)
    return tuple(records), words


def parse(data: bytes, name: str = "<bytes>") -> Stream:
    """Validate the whole file (header, every section's position, CRC and tensor records)."""
    header = parse_header(data, name)

    def bad(msg: str) -> BitstreamError:
        return BitstreamError(f"{name}: {msg}")

    size, n_tensors = len(data), len(header.shapes())
    pos = header.header_length + 4
    spans = []
    for g in range(header.num_gops):
        if pos + 9 > size:
            raise bad(f"section {g} (of {header.num_gops}) is missing: the file ends at byte {size} (truncated)")
        stype, length, crc = struct.unpack_from("<BII", data, pos)
        if stype != 1:
            raise bad(f"section {g} has type {stype}, expected 1 (GOP)")
        if length < _min_section(header):
            raise bad(f"section {g} length {length} is below the minimum {_min_section(header)}")
        if pos + 9 + length > size:
            raise bad(f"section {g} length {length} runs past the end of the file "
                      f"({pos + 9 + length} > {size} bytes; truncated)")
        payload = data[pos + 9:pos + 9 + length]
        if zlib.crc32(payload) != crc:
            raise bad(f"section {g} CRC mismatch (the payload is corrupted)")
        spans.append((pos, payload))
        pos += 9 + length
    if pos != size:
        raise bad(f"{size - pos} trailing bytes after the last section")
    sections = []
    for g, (off, payload) in enumerate(spans):
        records, words = _parse_payload(payload, g, header, bad)
        sections.append(Section(g, off, records, words))
    return Stream(name, size, header, tuple(sections))


def read(path: str | os.PathLike) -> Stream:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE:
            raise BitstreamError(f"{p}: file size {size} bytes is outside 1..2^31")
        data = p.read_bytes()
    except OSError as e:
        raise NervcError(f"{p}: cannot read ({e.strerror or e})") from None
    return parse(data, str(p))


# --------------------------------------------------------------------------------------------
# entropy decoding and weight reconstruction

def laplace_counts(K: int, R: int) -> np.ndarray:
    """The integer frequency table for symbols 0..2K (SPEC "Frequency table")."""
    T = (R * R) >> 16
    f = [(65536 - R) << 16, (R * (65536 - T)) >> 1]
    for _ in range(2, K + 1):
        nxt = (f[-1] * T) >> 16
        f.append(nxt)
        if nxt == 0:
            break
    f = f[:K + 1] + [0] * (K + 1 - len(f))
    half = np.maximum(np.array(f, dtype=np.int64) >> 8, 1)
    return np.concatenate([half[:0:-1], half])


END_MARKER = 0x4E56  # version 4: the last symbol of a GOP's ANS stream (SPEC "Decoding a section's levels")


def decode_levels(section: Section, name: str = "<bytes>", marker: bool = False) -> dict[str, np.ndarray]:
    """Integer levels of every tensor of one GOP (zeros for K = 0); with ``marker`` (version 4)
    the stream must end with END_MARKER, uniform over 16 bits."""
    import constriction

    where = f"{name}: GOP {section.index}"
    levels = {}
    coder = None
    try:
        # An empty stream is valid even with coded tensors (every level -K leaves the state 0).
        coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(section.words, dtype=np.uint32))
        for t in section.records:
            n = math.prod(t.shape)
            if t.K == 0:
                levels[t.name] = np.zeros(t.shape, np.int32)
                continue
            counts = laplace_counts(t.K, t.R)
            probs = counts.astype(np.float64) / float(counts.sum())
            model = constriction.stream.model.Categorical(probs, perfect=False)
            sym = np.asarray(coder.decode(model, n), dtype=np.int64)
            if sym.size != n or (sym.size and (sym.min() < 0 or sym.max() > 2 * t.K)):
                raise BitstreamError(f"{where} tensor {t.name}: symbol outside its table")
            levels[t.name] = (sym - t.K).astype(np.int32).reshape(t.shape)
        if marker:
            end = int(np.asarray(coder.decode(constriction.stream.model.Uniform(1 << 16), 1))[0])
            if end != END_MARKER:
                raise BitstreamError(f"{where}: the ANS stream ends early or late (end marker {end:#06x}, "
                                     f"not {END_MARKER:#06x})")
        if not coder.is_empty():
            raise BitstreamError(f"{where}: the ANS stream has data left after the last tensor")
    except BitstreamError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # constriction errors, Rust panics (PanicException)
        first = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise BitstreamError(f"{where}: the ANS stream does not decode ({type(e).__name__}: {first})") from None
    return levels


def resample_anchors(grid: np.ndarray, anchors: int) -> np.ndarray:
    """The init's grid ``[A0, C, h, w]`` at ``anchors`` anchors (SPEC "Resampling the init's
    anchors"): anchor k = the init at time k / (anchors - 1), positions in integers, float32."""
    g = np.asarray(grid, np.float32)
    a0 = g.shape[0]
    if anchors == a0:
        return g
    if a0 == 1 or anchors == 1:
        return np.repeat(g[:1], anchors, axis=0)
    out = np.empty((anchors,) + g.shape[1:], np.float32)
    for k in range(anchors):
        lo = min((k * (a0 - 1)) // (anchors - 1), a0 - 2)
        w1 = np.float32(k * (a0 - 1) - lo * (anchors - 1)) / np.float32(anchors - 1)
        w0 = np.float32(1) - w1
        out[k] = (g[lo] * w0).astype(np.float32) + (g[lo + 1] * w1).astype(np.float32)
    return out


def resize_bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``[..., h, w] -> [..., out_h, out_w]`` float32 (SPEC "Resizing the init grid"): bilinear
    with ``align_corners=False`` source indices, a width pass then a height pass, every
    product and sum rounded to float32; an axis whose size does not change is copied."""
    x = np.asarray(x, np.float32)

    def axis(n_in: int, n_out: int):
        scale = np.float32(n_in) / np.float32(n_out)
        src = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
        src = np.where(src < 0, np.float32(0), src).astype(np.float32)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
        i1 = i0 + (i0 < n_in - 1)
        l0 = (np.float32(1) - l1).astype(np.float32)
        return i0, i1, l0, l1

    if x.shape[-1] != out_w:
        i0, i1, l0, l1 = axis(x.shape[-1], out_w)
        x = (x[..., i0] * l0 + x[..., i1] * l1).astype(np.float32)
    if x.shape[-2] != out_h:
        i0, i1, l0, l1 = axis(x.shape[-2], out_h)
        x = (x[..., i0, :] * l0[:, None] + x[..., i1, :] * l1[:, None]).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# init files

@dataclass(frozen=True)
class Init:
    path: Path
    digest: bytes
    config: dict
    tensors: dict[str, np.ndarray]


def _canonical_config(cfg: dict) -> dict:
    ints = ("pe_freqs", "embed_dim", "grid_channels", "grid_anchors")
    out = {k: int(cfg[k]) for k in ints}
    out["pe_base"] = float(np.float32(cfg["pe_base"]))
    out["channels"] = [int(c) for c in cfg["channels"]]
    out["strides"] = [int(s) for s in cfg["strides"]]
    return out


def load_init(path: str | os.PathLike) -> Init:
    """Read an init file and compute its content digest (SPEC "Header": init digest)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    p = Path(path)
    try:
        if p.stat().st_size > MAX_INIT_BYTES:
            raise NervcError(f"init {p}: larger than {MAX_INIT_BYTES} bytes")
        with safe_open(str(p), framework="numpy") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(p))
    except NervcError:
        raise
    except Exception as e:  # OSError, SafetensorError, ValueError...
        raise NervcError(f"init {p}: unusable ({type(e).__name__}: {str(e)[:120]})") from None
    if meta.get("format") != "nervc-init/1":
        raise NervcError(f"init {p}: not a nervc init file (format {meta.get('format')!r})")
    try:
        cfg = _canonical_config(json.loads(meta["config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise NervcError(f"init {p}: bad configuration metadata ({e})") from None
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode())
    for tname in sorted(tensors):
        t = tensors[tname]
        if not np.issubdtype(t.dtype, np.floating):
            raise NervcError(f"init {p}: tensor {tname} is {t.dtype}, not floating point")
        t = np.ascontiguousarray(t, dtype="<f4")
        tensors[tname] = t
        h.update(tname.encode() + b"\0" + json.dumps(list(t.shape)).encode())
        h.update(t.tobytes())
    return Init(p, h.digest(), cfg, tensors)


def find_init(header: Header, name: str, inits: Sequence[str | os.PathLike] | None = None) -> Init:
    """The init whose digest starts with the header's init_id, from ``inits`` then the shipped ones."""
    candidates = [Path(p) for p in (inits or [])]
    if SHIPPED_INITS.is_dir():
        candidates += sorted(SHIPPED_INITS.glob("*.safetensors"))
    notes = []
    for c in candidates:
        try:
            init = load_init(c)
        except NervcError as e:
            notes.append(f"{c.name}: {e}")
            continue
        if init.digest[:16] == header.init_id:
            return init
        notes.append(f"{c.name}: id {init.digest.hex()[:16]}")
    tried = "; ".join(notes) or "no init files given"
    raise NervcError(f"{name}: needs init {header.init_id.hex()[:16]}, which is not available "
                     f"(tried {tried}); pass it with --init")


def _check_init_shapes(init: Init, header: Header) -> None:
    model = {"pe_freqs": header.pe_freqs, "pe_base": float(header.pe_base),
             "embed_dim": header.embed_dim, "grid_channels": header.grid_channels,
             "grid_anchors": header.grid_anchors, "channels": list(header.channels),
             "strides": list(header.strides)}
    config = dict(init.config)
    if header.version[0] >= 4:  # the stream's anchors may differ: the init's grid is resampled in time
        config["grid_anchors"] = header.grid_anchors
    if config != model:
        raise NervcError(f"init {init.path}: its model configuration {init.config} differs from "
                         f"the bitstream's {model}")
    for tname, shape in header.shapes():
        t = init.tensors.get(tname)
        if tname == "grid":
            ok = (t is not None and t.ndim == 4 and t.shape[1] == shape[1] and min(t.shape) >= 1
                  and (header.version[0] >= 4 or t.shape[0] == shape[0]))
        else:
            ok = t is not None and t.shape == shape
        if not ok:
            got = "missing" if t is None else str(tuple(t.shape))
            raise NervcError(f"init {init.path}: tensor {tname} is {got}, the bitstream needs {shape}")


# --------------------------------------------------------------------------------------------
# weights

def reconstruct(stream: Stream, gop: int, init: Init | None) -> dict[str, np.ndarray]:
    """One GOP's float32 weights, canonical order (SPEC "Reconstructing a tensor")."""
    section = stream.sections[gop]
    levels = decode_levels(section, stream.name, marker=stream.header.version[0] >= 4)
    out = {}
    for t in section.records:
        res = levels[t.name].astype(np.float32) * np.float32(t.step)
        if init is not None:
            base = init.tensors[t.name]
            if t.name == "grid":
                base = resize_bilinear(resample_anchors(base, t.shape[0]), t.shape[2], t.shape[3])
            res = (base.astype(np.float32) + res).astype(np.float32)
        out[t.name] = np.ascontiguousarray(res, dtype=np.float32)
    return out


def _init_for(stream: Stream, inits) -> Init | None:
    if not stream.header.has_init:
        return None
    init = find_init(stream.header, stream.name, inits)
    _check_init_shapes(init, stream.header)
    return init


def weights(path: str | os.PathLike, gop: int, inits: Sequence[str | os.PathLike] | None = None) -> dict[str, np.ndarray]:
    """The reconstructed float32 weights of GOP ``gop`` (dict name -> array, canonical order)."""
    stream = read(path)
    if not 0 <= gop < stream.header.num_gops:
        raise NervcError(f"{path}: GOP {gop} out of range (the file has {stream.header.num_gops})")
    return reconstruct(stream, gop, _init_for(stream, inits))


def weights_sha256(w: dict[str, np.ndarray]) -> str:
    """SHA-256 of the float32 little-endian bytes of every tensor in canonical (dict) order."""
    h = hashlib.sha256()
    for t in w.values():
        h.update(np.ascontiguousarray(t, dtype="<f4").tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# the network, float32 numpy, NHWC

_F = np.float32
_SQRT_HALF = _F(1 / math.sqrt(2))


def gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    x = x.astype(np.float32, copy=False)
    return (x * _F(0.5) * (_F(1) + erf(x * _SQRT_HALF).astype(np.float32))).astype(np.float32)


def conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, H, W, Cin]`` * ``[Cout, Cin, 3, 3]`` (zero padding 1) -> ``[N, H, W, Cout]``."""
    n, hh, ww, c = x.shape
    xp = np.zeros((n, hh + 2, ww + 2, c), np.float32)
    xp[:, 1:-1, 1:-1] = x
    cols = np.empty((n, hh, ww, 3, 3, c), np.float32)
    for dy in range(3):
        for dx in range(3):
            cols[:, :, :, dy, dx] = xp[:, dy:dy + hh, dx:dx + ww]
    wm = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(9 * c, -1), dtype=np.float32)
    out = cols.reshape(-1, 9 * c) @ wm
    out += b.astype(np.float32)
    return out.reshape(n, hh, ww, -1)


def pixel_shuffle(x: np.ndarray, s: int) -> np.ndarray:
    """NHWC PixelShuffle: channel ``c·s² + i·s + j`` -> pixel ``(h·s + i, w·s + j)`` of channel c."""
    if s == 1:
        return x
    n, hh, ww, cs = x.shape
    c = cs // (s * s)
    return x.reshape(n, hh, ww, c, s, s).transpose(0, 1, 4, 2, 5, 3).reshape(n, hh * s, ww * s, c)


def frame_times(n: int) -> np.ndarray:
    if n == 1:
        return np.zeros(1, np.float32)
    return (np.arange(n, dtype=np.float32) / np.float32(n - 1)).astype(np.float32)


def forward(h: Header, w: dict[str, np.ndarray], t: np.ndarray) -> np.ndarray:
    """Frames at GOP times ``t`` (float32 [B]) -> uint8 ``[B, height, width, 3]``."""
    with np.errstate(all="ignore"):  # absurd (valid) weights may overflow: no warning spam
        return _forward(h, w, t)


def _forward(h: Header, w: dict[str, np.ndarray], t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, np.float32)
    ls = np.arange(h.pe_freqs, dtype=np.float64)
    scales = (_F(math.pi) * (float(h.pe_base) ** ls).astype(np.float32)).astype(np.float32)
    ang = (t[:, None] * scales[None, :]).astype(np.float32)
    pe = np.concatenate([np.sin(ang), np.cos(ang)], axis=1).astype(np.float32)
    z = gelu(pe @ w["mlp.0.weight"].T + w["mlp.0.bias"])
    z = gelu(z @ w["mlp.2.weight"].T + w["mlp.2.bias"])

    grid = w["grid"]  # [A, C0, gh, gw]
    a = h.grid_anchors
    if a == 1:
        x = np.broadcast_to(grid[0], (len(t),) + grid.shape[1:])
    else:
        p = (t * _F(a - 1)).astype(np.float32)
        k = np.minimum(np.floor(p).astype(np.int64), a - 2)
        f = (p - k.astype(np.float32)).astype(np.float32)[:, None, None, None]
        x = grid[k] * (_F(1) - f) + grid[k + 1] * f
    x = np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1))  # NHWC

    for j, (c, s) in enumerate(zip(h.channels, h.strides)):
        x = pixel_shuffle(conv3x3(x, w[f"blocks.{j}.conv.weight"], w[f"blocks.{j}.conv.bias"]), s)
        film = z @ w[f"blocks.{j}.film.weight"].T + w[f"blocks.{j}.film.bias"]
        gamma, beta = film[:, :c], film[:, c:]
        x = gelu(x * (_F(1) + gamma)[:, None, None, :] + beta[:, None, None, :])
    y = conv3x3(x, w["head.weight"], w["head.bias"])
    y = ((np.tanh(y) + _F(1)) / _F(2)).astype(np.float32)
    y = y[:, :h.coded_height, :h.coded_width, :]
    if (h.coded_height, h.coded_width) != (h.height, h.width):
        y = resize_bicubic(y, h.height, h.width)
    y = np.nan_to_num(np.rint(_F(255) * y), nan=0.0)  # NaN (unspecified by SPEC): 0
    return np.clip(y, 0, 255).astype(np.uint8)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel, a = -0.75 (SPEC "Output size")."""
    a = -0.75
    x = np.abs(x)
    return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def _cubic_axis(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Tap indices ``[m, 4]`` (clamped into ``0..n-1``) and weights ``[m, 4]`` of one axis."""
    scale = np.float32(n) / np.float32(m)
    src = (scale * (np.arange(m, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)).astype(np.float64)
    i0 = np.floor(src).astype(np.int64)
    t = src - i0
    taps = i0[:, None] + np.arange(-1, 3)[None, :]
    weights = _cubic(t[:, None] - np.arange(-1, 3)[None, :])
    return np.clip(taps, 0, n - 1), weights


def resize_bicubic(y: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """NHWC frames in [0, 1] resized to ``out_h x out_w`` (SPEC "Output size"), in float64,
    then clamped to [0, 1]: width first, then height (the same sums in another order as a
    2-D kernel, within float rounding)."""
    x = y.astype(np.float64)
    iw, ww = _cubic_axis(x.shape[2], out_w)
    x = np.einsum("nhwkc,wk->nhwc", x[:, :, iw, :], ww)
    ih, wh = _cubic_axis(x.shape[1], out_h)
    x = np.einsum("nhkwc,hk->nhwc", x[:, ih, :, :], wh)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _per_frame_bytes(h: Header) -> int:
    """Peak float32 working memory of one frame's forward pass (padded size, im2col)."""
    gh, gw = h.grid_size
    c_in, px, most = h.grid_channels, gh * gw, 0
    for c, s in zip(h.channels, h.strides):
        most = max(most, px * (11 * c_in + 2 * c * s * s))  # padded input, 9x cols, conv out
        c_in, px = c, px * s * s
    most = max(most, px * (11 * c_in + 6))
    if (h.coded_height, h.coded_width) != (h.height, h.width):  # float64 resize: 4 taps, 2 passes
        most = max(most, 2 * 3 * 4 * (h.coded_height * h.width + h.height * h.width) * 2)
    return 4 * most


def _memory_budget() -> int:
    env = os.environ.get("NERVC_DECODE_MEMORY")
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise NervcError(f"NERVC_DECODE_MEMORY={env!r} is not a number of bytes") from None
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4)
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def decode(path: str | os.PathLike, inits: Sequence[str | os.PathLike] | None = None,
           frames: range | None = None, *, _stream: Stream | None = None) -> np.ndarray:
    """Decode ``path`` (or ``frames`` of it) to uint8 ``[N, height, width, 3]``."""
    stream = _stream or read(path)
    h = stream.header
    want = range(h.num_frames) if frames is None else frames
    if len(want) and (min(want) < 0 or max(want) >= h.num_frames):
        raise NervcError(f"{path}: frames {want.start}..{want.stop - 1} outside 0..{h.num_frames - 1}")
    init = _init_for(stream, inits)
    n_params = sum(math.prod(s) for _, s in h.shapes())
    out_bytes = len(want) * h.width * h.height * 3
    one = _per_frame_bytes(h)
    budget = _memory_budget()
    if out_bytes + 8 * n_params + one > budget:
        raise NervcError(f"{path}: decoding {len(want)} frames of {h.width}x{h.height} needs "
                         f"{(out_bytes + one) / 2**30:.1f} GiB, more than the {budget / 2**30:.1f} GiB "
                         "allowed (NERVC_DECODE_MEMORY); decode fewer frames")
    batch = max(1, min(64, (budget - out_bytes - 8 * n_params) // max(one, 1), (256 << 20) // max(one, 1)))
    out = np.empty((len(want), h.height, h.width, 3), np.uint8)
    wanted = np.asarray(list(want), dtype=np.int64)
    for g in sorted({int(f) // h.gop_frames for f in wanted}):
        gr = h.gop_range(g)
        idx = np.nonzero((wanted >= gr.start) & (wanted < gr.stop))[0]
        w = reconstruct(stream, g, init)
        times = frame_times(len(gr))[wanted[idx] - gr.start]
        for a in range(0, len(idx), batch):
            out[idx[a:a + batch]] = forward(h, w, times[a:a + batch])
    return out


# --------------------------------------------------------------------------------------------
# command line

def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bitstreams.refdecoder",
                                description="Decode a .nerv file to raw RGB with the SPEC.md reference decoder.")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path, help="raw RGB uint8, frame after frame, row-major")
    p.add_argument("--init", action="extend", nargs="+", default=[], metavar="PATH",
                   help="init file to look for the stream's init in (repeatable; the shipped ones are always tried)")
    args = p.parse_args(argv)
    try:
        frames = decode(args.input, args.init)
        with atomic_output(args.output) as tmp:
            with open(tmp, "wb") as f:
                f.write(frames.tobytes())
                f.flush()
                os.fsync(f.fileno())
    except NervcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {args.output}: {e.strerror or e}", file=sys.stderr)
        return 1
    n, hh, ww, _ = frames.shape
    print(f"{args.input}: {n} frames of {ww}x{hh} -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
