"""Reader and writer of the ``.nerv`` container, version 4 (byte layout in SPEC.md).

Everything a header or section declares is checked against the limits below and against the
bytes actually present *before* any buffer or tensor is made, so a crafted file is rejected
in milliseconds with a ``BitstreamError`` rather than allocating or crashing.

Version 2 stores, per tensor, a float16 step, the largest level ``K`` and a 16-bit Laplace
parameter ``R`` (the entropy model is derived from them, nothing else is sent), and one ANS
stream per GOP. Version 3 adds the coded frame size: the networks draw
``coded_width x coded_height`` frames that the decoder resizes (bicubic) to the output size,
so that a short fit can spend its steps on fewer pixels. Version 2 files (coded size = output
size) still decode; version 1 files are refused with a message naming their version. Version 4
lets a stream's grid have its own number of temporal anchors (the init's grid is resampled in
time), starts each GOP section with its index and frame range, and ends each GOP's ANS stream
with a 16-bit marker; version 3 files still decode.
"""
from __future__ import annotations

import functools
import math
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from nervcore.atomic import atomic_output, write_bytes_atomic
from nervcore.errors import NervcError
from metanerv.model import NeRVConfig, decode_param_shapes, grid_size_for

MAGIC = b"NERV"
VERSION_MAJOR = 4
VERSION_MINOR = 0
READ_VERSIONS = (2, 3, 4)  # majors this decoder reads
FUTURE_VERSIONS = range(5, 16)  # majors a later nervc may write: "upgrade"; others: "corrupt"
SECTION_GOP = 1
INIT_ID_BYTES = 16  # the first 16 bytes of the init's SHA-256 content digest

# Limits (SPEC.md, "Limits"): a conforming decoder rejects anything beyond them.
MAX_DIM = 16384
MAX_FRAMES = 10_000_000
MAX_GOPS = 1_000_000
MAX_FPS_TERM = 1_000_000
MAX_BLOCKS = 8
MAX_CHANNELS = 1024
MAX_STRIDE = 8
MAX_PE_FREQS = 64
MAX_EMBED = 1024
MAX_GRID_CHANNELS = 256
MAX_ANCHORS = 255  # version 4: the u8 field's range, one per frame of a GOP of up to 255 (2 and 3: 64)
MAX_DECODE_PARAMS = 32_000_000
MAX_MACS_PER_PIXEL = 1_000_000  # decode cost: multiply-accumulates per output pixel
MAX_LEVEL = 32767  # |level|: every frequency table has at most 65,535 entries
R_ONE = 1 << 16
MAX_FILE_BYTES = 1 << 31
MAX_HEADER_BYTES = 1024
MAX_VARINT_BYTES = 5
ANS_PRECISION = 24  # bits: no symbol costs more than this (see max_words)
SECTION_OVERHEAD = 9  # type, length, crc

_FIXED = struct.Struct("<4sBBHHHIIIII16sBfHHBB")  # through n_blocks
_CODED = struct.Struct("<HH")  # version 3: coded_width, coded_height, after n_blocks
_GOP_ID = struct.Struct("<III")  # version 4: gop_index, first_frame, num_frames, first in a GOP payload


class BitstreamError(NervcError):
    """The file is not a valid ``.nerv`` bitstream of a version this decoder reads."""


@functools.lru_cache(maxsize=256)
def _param_shapes(config: NeRVConfig, grid_hw: tuple[int, int]) -> tuple:
    return tuple(decode_param_shapes(config, grid_hw))


def param_shapes(config: NeRVConfig, grid_hw: tuple[int, int]) -> list[tuple[str, tuple[int, ...]]]:
    """Canonical (name, shape) list of the decode tensors, memoized: building the meta-device
    model that ``decode_param_shapes`` inspects costs ~10 ms, paid once per configuration."""
    return list(_param_shapes(config, tuple(grid_hw)))


def macs_per_pixel(config: NeRVConfig) -> float:
    """Multiply-accumulates per (padded) output pixel of the decode network.

    Block ``j`` runs a 3x3 conv with ``C_in * C_j * s_j**2`` filters at ``1 / prod(s_j..)**2``
    of the output resolution; the head is a 3x3 conv to RGB at full resolution. The per-frame
    MLP and FiLM layers do not grow with the frame size and are left out.
    """
    total, c_in = 27.0 * config.channels[-1], config.grid_channels
    for j, (c, s) in enumerate(zip(config.channels, config.strides)):
        down = math.prod(config.strides[j:])
        total += c_in * c * 9.0 * s * s / (down * down)
        c_in = c
    return total


def max_words(numel: int, marker: bool = False) -> int:
    """Most 32-bit ANS words ``numel`` symbols can take: each costs at most 24 bits, plus the
    coder's 64-bit state (and version 4's 16-bit end marker)."""
    return -(-(ANS_PRECISION * numel + 64 + (16 if marker else 0)) // 32)


@dataclass
class Header:
    """Everything needed to rebuild the networks except their weights."""

    width: int
    height: int
    num_frames: int
    fps: Fraction
    gop_frames: int
    num_gops: int
    config: NeRVConfig
    init_digest: bytes = bytes(INIT_ID_BYTES)  # init id: first 16 bytes of its SHA-256 digest
    coded: tuple[int, int] | None = None  # (width, height) the networks draw; None: the output size
    version: int = VERSION_MAJOR  # the major version read (files are written as VERSION_MAJOR)

    def __post_init__(self) -> None:
        self.init_digest = bytes(self.init_digest[:INIT_ID_BYTES]).ljust(INIT_ID_BYTES, b"\0")
        if self.coded is not None:
            self.coded = (int(self.coded[0]), int(self.coded[1]))
            if self.coded == (self.width, self.height):
                self.coded = None

    @property
    def coded_width(self) -> int:
        return self.coded[0] if self.coded else self.width

    @property
    def coded_height(self) -> int:
        return self.coded[1] if self.coded else self.height

    @property
    def coded_hw(self) -> tuple[int, int]:
        return (self.coded_height, self.coded_width)

    @property
    def resized(self) -> bool:
        """Whether the decoder resizes the networks' frames to the output size."""
        return self.coded_hw != (self.height, self.width)

    @property
    def has_init(self) -> bool:
        return self.init_digest != bytes(INIT_ID_BYTES)

    @property
    def grid_hw(self) -> tuple[int, int]:
        return grid_size_for(self.coded_height, self.coded_width, self.config)


@dataclass
class TensorRecord:
    """One tensor: step, entropy model (``K`` = largest |level|, Laplace parameter ``R``).

    The residual is ``step * level``; it is added to the init's tensor when the stream has an
    init (delta coding), else it is the weight. ``K = 0``: every level is 0, nothing is coded.
    """

    step: np.float16
    K: int
    R: int = 0


@dataclass
class GopRecord:
    """The network of frames ``first_frame .. first_frame + num_frames - 1``: its tensors'
    records in canonical order and the one ANS stream that holds all their levels."""

    first_frame: int
    num_frames: int
    tensors: list[TensorRecord] = field(default_factory=list)
    words: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    index: int | None = None  # the GOP's position in the file (version 4 stores it in its section)


# ------------------------------------------------------------------ writing

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_header(h: Header) -> bytes:
    """The header as version ``h.version`` lays it out: 4 (what nervc writes) or 3 (the same
    layout; tests and tools re-serialize files they read)."""
    c = h.config
    if h.version not in (3, VERSION_MAJOR):
        raise ValueError(f"cannot write a version {h.version} header")
    body = _FIXED.pack(MAGIC, h.version, VERSION_MINOR, 0, h.width, h.height, h.num_frames,
                       h.fps.numerator, h.fps.denominator, h.gop_frames, h.num_gops,
                       h.init_digest, c.pe_freqs, c.pe_base, c.embed_dim, c.grid_channels,
                       c.grid_anchors, len(c.channels))
    body += _CODED.pack(h.coded_width, h.coded_height)
    body += struct.pack(f"<{len(c.channels)}H", *c.channels)
    body += struct.pack(f"<{len(c.strides)}B", *c.strides)
    body = body[:6] + struct.pack("<H", len(body)) + body[8:]
    return body + struct.pack("<I", zlib.crc32(body))


def encode_tensor(t: TensorRecord) -> bytes:
    out = np.asarray([t.step], dtype="<f2").tobytes() + _varint(int(t.K))
    if t.K:
        out += struct.pack("<H", int(t.R))
    return out


def section_overhead_bytes(largest_levels: Iterable[int]) -> int:
    """The bytes a GOP section holds besides its ANS words when its tensors' largest ``|level|``
    are ``largest_levels`` (section header, GOP identity, word count, one record per tensor:
    step, K, and R when K > 0): what an encoder aiming at a file size spends before the levels."""
    return (struct.calcsize("<BII") + _GOP_ID.size + 4
            + sum(2 + len(_varint(int(k))) + (2 if k else 0) for k in largest_levels))


def check_gop_section(section: bytes) -> None:
    """Refuse a serialized GOP section whose type, length or CRC is wrong (an internal error:
    what a writer is about to put in a file)."""
    if len(section) < SECTION_OVERHEAD:
        raise NervcError("internal error: a GOP section shorter than its own fields")
    kind, length, crc = struct.unpack_from("<BII", section)
    if kind != SECTION_GOP or length != len(section) - SECTION_OVERHEAD or \
            crc != zlib.crc32(section[SECTION_OVERHEAD:]):
        raise NervcError("internal error: a damaged GOP section was about to be written")


def encode_gop(g: GopRecord, index: int | None = None, version: int = VERSION_MAJOR) -> bytes:
    """One GOP section: in version 4 its identity (``index``, default ``g.index``, and frame
    range) first, then the tensor records and the ANS words (version 3: no identity)."""
    payload = b""
    if version >= 4:
        index = g.index if index is None else index
        if index is None or index < 0:
            raise ValueError("a GOP section needs its index in the file")
        payload = _GOP_ID.pack(index, g.first_frame, g.num_frames)
    payload += b"".join(encode_tensor(t) for t in g.tensors)
    payload += struct.pack("<I", len(g.words)) + np.asarray(g.words, dtype="<u4").tobytes()
    return struct.pack("<BII", SECTION_GOP, len(payload), zlib.crc32(payload)) + payload


def write_bitstream(path: str | os.PathLike, header: Header, gops: list[GopRecord]) -> int:
    """Write header and GOP sections atomically; returns bytes written.

    See :mod:`nervcore.atomic`: a reader sees the old file or the complete new one, never a
    partial one. OS errors become a NervcError.
    """
    data = encode_header(header) + b"".join(encode_gop(g, i, header.version) for i, g in enumerate(gops))
    p = Path(path)
    if p.is_dir():
        raise NervcError(f"{p}: is a directory")
    try:
        return write_bytes_atomic(p, data)
    except OSError as e:
        raise NervcError(f"{p}: cannot write ({e.strerror or e})") from None


class BitstreamWriter:
    """Write a ``.nerv`` file section by section, atomically: the bytes of ``write_bitstream``.

    The header goes first (its length depends only on the model configuration), then each GOP
    section as it is coded, into a temporary file beside ``path``. :meth:`finish` may rewrite
    the header with the final frame and GOP counts (a source that did not know its length up
    front), then flushes the file; :meth:`commit` renames it onto ``path``. Until then readers
    see the old file or none; :meth:`abort` removes the temporary, as does leaving the
    ``with`` block without :meth:`commit` (by an exception or not). Use as
    ``with BitstreamWriter(p, h) as w: w.add_gop(g) ...; w.commit()``.
    """

    def __init__(self, path: str | os.PathLike, header: Header) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise NervcError(f"{self.path}: is a directory")
        self._head = encode_header(header)
        self.header = header
        self.num_sections = 0
        self.size = 0
        self._ctx = atomic_output(self.path)
        try:
            self.tmp_path: Path = self._ctx.__enter__()
            self._file = open(self.tmp_path, "wb")
        except OSError as e:
            self._ctx = None
            raise NervcError(f"{self.path}: cannot write ({e.strerror or e})") from None
        try:
            self._write(self._head)
        except BaseException:
            self.abort()
            raise

    def _write(self, data: bytes) -> None:
        if self.size + len(data) > MAX_FILE_BYTES:
            raise NervcError(f"{self.path}: the bitstream would exceed the {MAX_FILE_BYTES}-byte limit")
        try:
            self._file.write(data)
        except OSError as e:
            raise NervcError(f"{self.path}: cannot write ({e.strerror or e})") from None
        self.size += len(data)

    def add_gop(self, gop: GopRecord) -> int:
        """Append one GOP section; returns its length in bytes."""
        return self.add_section(encode_gop(gop, self.num_sections, self.header.version))

    def add_section(self, section: bytes) -> int:
        """Append one section already serialized by :func:`encode_gop` (type, length, CRC and
        payload are checked, so a damaged buffer never reaches the file)."""
        check_gop_section(section)
        self._write(section)
        self.num_sections += 1
        return len(section)

    def finish(self, header: Header | None = None) -> Path:
        """Complete the temporary file (optionally with a final ``header``); returns its path,
        which a caller may read back before :meth:`commit`."""
        if header is not None:
            head = encode_header(header)
            if len(head) != len(self._head):
                raise NervcError("internal error: the final header differs in length from the first")
            self.header, self._head = header, head
        if self.num_sections != self.header.num_gops:
            raise NervcError(f"internal error: {self.num_sections} GOP sections written, the header "
                             f"declares {self.header.num_gops}")
        try:
            if header is not None:
                self._file.seek(0)
                self._file.write(self._head)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as e:
            raise NervcError(f"{self.path}: cannot write ({e.strerror or e})") from None
        return self.tmp_path

    def commit(self) -> int:
        """Rename the finished file onto ``path``; returns its size in bytes."""
        if not self._file.closed:
            self.finish()
        ctx, self._ctx = self._ctx, None
        try:
            ctx.__exit__(None, None, None)
        except OSError as e:
            raise NervcError(f"{self.path}: cannot write ({e.strerror or e})") from None
        return self.size

    def abort(self) -> None:
        """Remove the temporary file; ``path`` is left as it was. Safe to call twice."""
        if self._ctx is None:
            return
        ctx, self._ctx = self._ctx, None
        self._file.close()
        err = NervcError("aborted")
        ctx.__exit__(NervcError, err, None)  # atomic_output removes the temporary and re-raises

    def __enter__(self) -> "BitstreamWriter":
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.abort()  # a no-op after commit(): whatever was not committed is not wanted


# ------------------------------------------------------------------ reading

class _Cursor:
    """Bounds-checked reads from a bytes payload."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(f"{self.what}: truncated (needs {n} bytes at offset {self.pos}, "
                                 f"{len(self.data) - self.pos} left)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str) -> tuple:
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size))

    def varint(self) -> int:
        """LEB128 of at most MAX_VARINT_BYTES bytes and value < 2**32."""
        n = 0
        for i in range(MAX_VARINT_BYTES):
            (b,) = self.take(1)
            n |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if n > 0xFFFFFFFF:
                    raise BitstreamError(f"{self.what}: varint value {n} exceeds 32 bits")
                return n
        raise BitstreamError(f"{self.what}: varint longer than {MAX_VARINT_BYTES} bytes")

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise BitstreamError(msg)


def decode_header(data: bytes) -> tuple[Header, int]:
    """Parse and validate the header at the start of ``data``; returns it and its size."""
    _check(len(data) >= 8, "not a .nerv file (shorter than its magic)")
    _check(data[:4] == MAGIC, "not a .nerv file (bad magic)")
    major, minor, hlen = struct.unpack_from("<BBH", data, 4)
    _check(major != 1, f"bitstream version {major}.{minor} (nervc 0.1) is no longer supported: this "
                       f"decoder reads versions 2.x to 4.x; decode it with nervc 0.1 or encode the "
                       f"video again")
    _check(major in READ_VERSIONS or major not in FUTURE_VERSIONS,
           f"bitstream version {major}.{minor} is not supported (this decoder reads versions 2.x to "
           f"4.x): the file is from a newer nervc; upgrade nervc")
    _check(major in READ_VERSIONS, f"not a .nerv file this nervc can read: version {major}.{minor} after "
                                   "the magic is no version nervc ever wrote (the file is corrupt)")
    _check(_FIXED.size <= hlen <= MAX_HEADER_BYTES, f"bad header length {hlen}")
    _check(len(data) >= hlen + 4, "truncated header")
    body = data[:hlen]
    (crc,) = struct.unpack_from("<I", data, hlen)
    _check(zlib.crc32(body) == crc, "header CRC mismatch (file corrupted)")
    (_, _, _, _, width, height, frames, fps_n, fps_d, gop_frames, num_gops, digest,
     pe_freqs, pe_base, embed, grid_c, anchors, n_blocks) = _FIXED.unpack_from(body)
    _check(1 <= width <= MAX_DIM and 1 <= height <= MAX_DIM, f"frame size {width}x{height} out of range")
    _check(1 <= frames <= MAX_FRAMES, f"frame count {frames} out of range")
    _check(1 <= fps_n <= MAX_FPS_TERM and 1 <= fps_d <= MAX_FPS_TERM, f"frame rate {fps_n}/{fps_d} out of range")
    _check(1 <= gop_frames <= frames, f"GOP length {gop_frames} out of range")
    _check(num_gops == -(-frames // gop_frames),
           f"GOP count {num_gops} does not match {frames} frames in GOPs of {gop_frames}")
    _check(num_gops <= MAX_GOPS, f"GOP count {num_gops} exceeds the limit of {MAX_GOPS}")
    _check(1 <= pe_freqs <= MAX_PE_FREQS, f"positional encoding size {pe_freqs} out of range")
    _check(math.isfinite(pe_base) and 1.0 <= pe_base <= 4.0, f"positional encoding base {pe_base} out of range")
    _check(1 <= embed <= MAX_EMBED, f"embedding width {embed} out of range")
    _check(1 <= grid_c <= MAX_GRID_CHANNELS, f"grid channels {grid_c} out of range")
    _check(1 <= anchors <= (MAX_ANCHORS if major >= 4 else 64), f"grid anchors {anchors} out of range")
    _check(1 <= n_blocks <= MAX_BLOCKS, f"block count {n_blocks} out of range")
    off = _FIXED.size + (_CODED.size if major >= 3 else 0)
    _check(hlen == off + 3 * n_blocks, f"header length {hlen} does not match {n_blocks} blocks")
    coded_w, coded_h = _CODED.unpack_from(body, _FIXED.size) if major >= 3 else (width, height)
    _check(1 <= coded_w <= width and 1 <= coded_h <= height,
           f"coded frame size {coded_w}x{coded_h} out of range (1x1 to the output's {width}x{height})")
    channels = struct.unpack_from(f"<{n_blocks}H", body, off)
    strides = struct.unpack_from(f"<{n_blocks}B", body, off + 2 * n_blocks)
    _check(all(1 <= c <= MAX_CHANNELS for c in channels), f"block channels {channels} out of range")
    _check(all(1 <= s <= MAX_STRIDE for s in strides), f"block strides {strides} out of range")
    config = NeRVConfig(pe_freqs=pe_freqs, pe_base=pe_base, embed_dim=embed, grid_channels=grid_c,
                        grid_anchors=anchors, channels=channels, strides=strides)
    header = Header(width, height, frames, Fraction(fps_n, fps_d), gop_frames, num_gops, config, digest,
                    (coded_w, coded_h), major)
    gh, gw = header.grid_hw
    _check(gh * gw * anchors * grid_c <= MAX_DECODE_PARAMS,
           f"grid of {anchors}x{grid_c}x{gh}x{gw} values exceeds the limit of {MAX_DECODE_PARAMS}")
    n_params = sum(math.prod(s) for _, s in param_shapes(config, header.grid_hw))
    _check(n_params <= MAX_DECODE_PARAMS,
           f"model of {n_params} parameters exceeds the limit of {MAX_DECODE_PARAMS}")
    mpp = macs_per_pixel(config)
    _check(mpp <= MAX_MACS_PER_PIXEL, f"model costs {mpp:.0f} multiply-accumulates per pixel, "
                                      f"more than the limit of {MAX_MACS_PER_PIXEL}")
    return header, hlen + 4


def check_header(h: Header) -> None:
    """Raise BitstreamError where a decoder would refuse ``h``: the checks of
    :func:`decode_header` on its serialized bytes (what an encoder runs before fitting)."""
    decode_header(encode_header(h))


@dataclass
class _SectionIndex:
    first_frame: int
    num_frames: int
    offset: int  # of the payload in the file
    length: int
    crc: int


class BitstreamReader:
    """Random access to a ``.nerv`` file: the header and a section index, payloads on demand.

    ``partial=True`` reads a file an encoder was stopped in the middle of writing (its header
    declares every GOP, fewer follow): the index holds the whole sections from the start, up to
    the first that is missing, cut short or not a GOP section, and ``end`` is where they end.
    Their payloads are checked (CRC, fields) by :meth:`read_gop` as in a whole file.
    """

    def __init__(self, path: str | os.PathLike, *, partial: bool = False) -> None:
        self.path = Path(path)
        self.partial = partial
        try:
            self._open()
        except OSError as e:  # unreadable, vanished, permissions, I/O error...
            raise BitstreamError(f"{self.path}: cannot read ({e.strerror or e})") from None

    def _open(self) -> None:
        if not self.path.exists():
            raise BitstreamError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise BitstreamError(f"{self.path}: not a file")
        self.size = self.path.stat().st_size
        self._check(self.size > 0, "empty file, not a .nerv bitstream")
        self._check(self.size <= MAX_FILE_BYTES, f"larger than {MAX_FILE_BYTES} bytes")
        with open(self.path, "rb") as f:
            head = f.read(MAX_HEADER_BYTES + 4)
            try:
                self.header, pos = decode_header(head)
                self.version = (head[4], head[5])  # (major, minor) as written
            except BitstreamError as e:
                raise BitstreamError(f"{self.path}: {e}") from None
            self.shapes = param_shapes(self.header.config, self.header.grid_hw)
            self.sections: list[_SectionIndex] = []
            expected_first = 0
            # Each section takes at least 9 bytes, 3 per tensor and the word count (version 4:
            # its identity and the ANS end marker's word too): a header that claims more GOPs
            # than that can hold is refused before walking them.
            self.min_section = SECTION_OVERHEAD + 3 * len(self.shapes) + 4
            if self.header.version >= 4:
                self.min_section += _GOP_ID.size + 4
            if self.partial:
                self.end = self._whole_sections(f, pos)
                return
            self._check(self.header.num_gops * self.min_section <= self.size - pos,
                        f"truncated: {self.header.num_gops} GOPs cannot fit in {self.size - pos} bytes")
            for i in range(self.header.num_gops):
                f.seek(pos)
                sh = f.read(9)
                self._check(len(sh) == 9, f"truncated: section {i} of {self.header.num_gops} missing")
                kind, length, crc = struct.unpack("<BII", sh)
                self._check(kind == SECTION_GOP, f"section {i}: unknown type {kind}")
                self._check(pos + 9 + length <= self.size,
                            f"truncated: section {i} declares {length} bytes, {self.size - pos - 9} present")
                self._check(length >= self.min_section - SECTION_OVERHEAD, f"section {i}: too short")
                n = min(self.header.gop_frames, self.header.num_frames - expected_first)
                self.sections.append(_SectionIndex(expected_first, n, pos + 9, length, crc))
                expected_first += n
                pos += 9 + length
            self._check(pos == self.size, f"{self.size - pos} unexpected trailing bytes")
            self.end = pos

    def _whole_sections(self, f, pos: int) -> int:
        """Index the whole GOP sections from ``pos`` on (a partial file); returns their end."""
        expected_first = 0
        for _ in range(self.header.num_gops):
            f.seek(pos)
            sh = f.read(9)
            if len(sh) < 9:
                break
            kind, length, crc = struct.unpack("<BII", sh)
            if kind != SECTION_GOP or length < self.min_section - SECTION_OVERHEAD or pos + 9 + length > self.size:
                break
            n = min(self.header.gop_frames, self.header.num_frames - expected_first)
            self.sections.append(_SectionIndex(expected_first, n, pos + 9, length, crc))
            expected_first += n
            pos += 9 + length
        return pos

    def _check(self, cond: bool, msg: str) -> None:
        if not cond:
            raise BitstreamError(f"{self.path}: {msg}")

    def gop_for_frame(self, frame: int) -> int:
        return frame // self.header.gop_frames

    def read_gop(self, index: int) -> GopRecord:
        """Parse and validate GOP ``index`` (CRC, shapes, symbol tables) without decoding it."""
        s = self.sections[index]
        try:
            with open(self.path, "rb") as f:
                f.seek(s.offset)
                payload = f.read(s.length)
        except OSError as e:
            raise BitstreamError(f"{self.path}: cannot read ({e.strerror or e})") from None
        self._check(len(payload) == s.length, f"section {index}: truncated")
        self._check(zlib.crc32(payload) == s.crc, f"section {index}: CRC mismatch (file corrupted)")
        try:
            return self._parse_gop(payload, index)
        except BitstreamError as e:
            raise BitstreamError(f"{self.path}: {e}") from None

    def _parse_gop(self, payload: bytes, index: int) -> GopRecord:
        what = f"section {index}"
        cur = _Cursor(payload, what)
        s = self.sections[index]
        gop = GopRecord(s.first_frame, s.num_frames, index=index)
        v4 = self.header.version >= 4
        if v4:
            held, first, n = cur.unpack("III")
            _check(held == index, f"{what} holds GOP {held}: GOP sections swapped, lost or repeated")
            _check((first, n) == (s.first_frame, s.num_frames),
                   f"{what} declares frames {first}..{first + n - 1}, the header puts frames "
                   f"{s.first_frame}..{s.first_frame + s.num_frames - 1} there")
        coded = 0
        for name, shape in self.shapes:
            w = f"{what}, tensor {name}"
            (raw,) = cur.unpack("H")
            step = np.frombuffer(struct.pack("<H", raw), dtype="<f2")[0]
            _check(bool(np.isfinite(step)) and float(step) >= 0, f"{w}: bad step {float(step)}")
            K = cur.varint()
            _check(K <= MAX_LEVEL, f"{w}: largest level {K} exceeds {MAX_LEVEL}")
            R = 0
            if K:
                (R,) = cur.unpack("H")
                coded += math.prod(shape)
            gop.tensors.append(TensorRecord(np.float16(step), K, R))
        (n_words,) = cur.unpack("I")
        _check(4 * n_words <= cur.left, f"{what}: declares {n_words} words, {cur.left // 4} present")
        if v4:  # the ANS stream ends with a 16-bit marker, so it is never empty
            _check(1 <= n_words <= max_words(coded, marker=True),
                   f"{what}: {n_words} coded words for {coded} coded entries and the end marker")
        else:
            _check(n_words <= max_words(coded) and (coded > 0 or n_words == 0),
                   f"{what}: {n_words} coded words for {coded} coded entries")
        gop.words = np.frombuffer(cur.take(4 * n_words), dtype="<u4").astype(np.uint32)
        _check(cur.left == 0, f"{what}: {cur.left} unexpected trailing bytes")
        return gop
