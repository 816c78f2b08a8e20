"""Deterministic generation of hostile ``.nerv`` inputs (bitstream version 3, and 2) from the seed corpus.

``make_case(rng, seeds, inits)`` returns one test input. Strategies:

* ``raw``: 1-4 stacked byte-level mutations (bit flips, interesting bytes and integers,
  truncation, insertion, deletion, duplication, chunk moves) of one seed; in half of the cases
  the header and section CRCs are recomputed afterwards (``raw+crc``) so the input gets past
  the CRC checks into the parser and the entropy decoder.
* ``splice``: the head of one seed joined to the tail of another (optionally CRC-fixed).
* ``field``: parse a seed into its header and records, change one to three fields and
  serialize it again with valid CRCs: header fields (semantically, through the writer, or as
  raw bytes at their offsets: version, header length, block count, coded size...), tensor records
  (step NaN/inf/negative/subnormal, ``K`` at and past 32767 or past 32 bits, ``R`` at its
  ends, overlong/6-byte/unterminated varints, truncated records), the GOP's one ANS stream
  (flipped, truncated, extended, emptied, random, a trailing zero word, another GOP's words),
  the declared word count, every ``K`` set to 0 with or without the words, swapped / dropped /
  duplicated tensors and sections, section type / length / trailing payload bytes.
* ``resize``: a consistent header rewrite claiming a different frame count / GOP length /
  frame size (what a decompression bomb looks like), with the seed's tensor records or with
  every ``K = 0`` (then the stream is valid for any size).
* ``synth``: a stream built from scratch for a random architecture, levels coded with random
  ``(K, R)`` models, or coded and then given random words / a wrong ``R`` / ``K = 0``.
* ``seed``: an unmodified seed (must decode).

Version-3 layout (SPEC.md): the fixed header is 63 bytes (init id: 16 bytes at offset 32; coded
width and height u16 at 59 and 61) plus 3 per block, then its CRC (version 2: 59 bytes, no coded
size); a tensor record is step f16 + K varint + R u16 when K > 0; a GOP
payload is the records, then n_words u32 and the words.
"""
from __future__ import annotations

import copy
import math
import random
import struct
import zlib
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from bitstreams.format import (
    INIT_ID_BYTES, MAX_DIM, MAX_FRAMES, MAX_LEVEL, SECTION_GOP, GopRecord, Header, TensorRecord,
    encode_gop, encode_header, encode_tensor, param_shapes,
)

CORPUS = Path(__file__).resolve().parent / "corpus"

INTERESTING_8 = [0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF]
INTERESTING_16 = [0, 1, 2, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF, 16384, 16385, 1024, 1025, 59, 62, 32767,
                  32768, 0x7C00, 0xFC00, 0x7E00, 0x0001, 0x8001]  # the last five: f16 inf/-inf/NaN/tiny
INTERESTING_32 = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 10_000_000,
                  10_000_001, 1_000_000, 1_000_001, 32_000_000, 1 << 24, 65535, 65536]

# The fixed header of version 3 (SPEC.md, "Header"): name -> (offset, struct format)
HEADER_LAYOUT = {
    "magic": (0, "4s"), "version_major": (4, "B"), "version_minor": (5, "B"), "header_length": (6, "H"),
    "width": (8, "H"), "height": (10, "H"), "num_frames": (12, "I"), "fps_num": (16, "I"),
    "fps_den": (20, "I"), "gop_frames": (24, "I"), "num_gops": (28, "I"), "init_id": (32, "16s"),
    "pe_freqs": (48, "B"), "pe_base": (49, "f"), "embed_dim": (53, "H"), "grid_channels": (55, "H"),
    "grid_anchors": (57, "B"), "n_blocks": (58, "B"), "coded_width": (59, "H"), "coded_height": (61, "H"),
}
FIXED_HEADER = 63
FIXED_HEADER_V2 = 59


@dataclass
class Seed:
    name: str
    data: bytes
    header: Header
    gops: list[GopRecord]
    init: str | None  # init file the seed needs (path), None for absolute coding / shipped init
    shapes: list = field(default_factory=list)


@dataclass
class Case:
    data: bytes
    strategy: str
    detail: str
    init: list[str]  # init files handed to the decoder
    seed: str


def load_seeds(corpus: Path = CORPUS) -> list[Seed]:
    import json

    from bitstreams import BitstreamReader
    meta = json.loads((corpus / "seeds.json").read_text())
    seeds = []
    for name in sorted(meta):
        path = corpus / name
        r = BitstreamReader(path)
        gops = [r.read_gop(i) for i in range(len(r.sections))]
        init = str(corpus / meta[name]["init"]) if meta[name]["init"] else None
        seeds.append(Seed(name, path.read_bytes(), r.header, gops, init, list(r.shapes)))
    return seeds


def all_inits(corpus: Path = CORPUS) -> list[str]:
    return [str(p) for p in sorted(corpus.glob("init_*.safetensors"))]


def zero_gop(h: Header, first: int, n: int) -> GopRecord:
    """A GOP whose every tensor has ``K = 0`` (no words; version 4: the end marker's one word):
    valid for any header."""
    shapes = param_shapes(h.config, h.grid_hw)
    words = np.zeros(0, np.uint32)
    if h.version >= 4:
        from codec.entropy import END_MARKER_WORDS
        words = END_MARKER_WORDS.copy()
    return GopRecord(first, n, [TensorRecord(np.float16(0), 0, 0) for _ in shapes], words)


# ------------------------------------------------------------------ CRC / length repair

def fix_crcs(data: bytes, fix_lengths: bool = False) -> bytes:
    """Recompute the header CRC and every section CRC that lies inside the data.

    With ``fix_lengths`` the last section's length is also set to reach the end of the data,
    so that insertions and deletions inside the final section stay "valid" at the container
    level.
    """
    b = bytearray(data)
    if len(b) < 8:
        return bytes(b)
    (hlen,) = struct.unpack_from("<H", b, 6)
    if hlen + 4 > len(b):
        return bytes(b)
    struct.pack_into("<I", b, hlen, zlib.crc32(bytes(b[:hlen])))
    pos = hlen + 4
    while pos + 9 <= len(b):
        kind, length, _ = struct.unpack_from("<BII", b, pos)
        end = pos + 9 + length
        if fix_lengths and (end > len(b) or (end < len(b) and len(b) - end < 9)):
            length = len(b) - pos - 9
            end = len(b)
            struct.pack_into("<I", b, pos + 1, length)
        if end > len(b):
            break
        struct.pack_into("<I", b, pos + 5, zlib.crc32(bytes(b[pos + 9:end])))
        pos = end
    return bytes(b)


def fix_header_crc(data: bytes) -> bytes:
    """Recompute only the header CRC (at the header length the data declares)."""
    b = bytearray(data)
    if len(b) >= 8:
        (hlen,) = struct.unpack_from("<H", b, 6)
        if hlen + 4 <= len(b):
            struct.pack_into("<I", b, hlen, zlib.crc32(bytes(b[:hlen])))
    return bytes(b)


# ------------------------------------------------------------------ raw mutations

def _raw_once(rng: random.Random, b: bytearray, other: bytes) -> str:
    n = len(b)
    op = rng.choice(["flip", "flip", "byte", "int16", "int32", "truncate", "insert", "delete",
                     "dup", "move", "zero", "tail"])
    if n == 0:
        op = "insert"
    if op == "flip":
        k = rng.choice([1, 1, 2, 3, 8])
        for _ in range(k):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        return f"flip{k}"
    if op == "byte":
        i = rng.randrange(n)
        b[i] = rng.choice(INTERESTING_8 + [rng.randrange(256)])
        return f"byte@{i}"
    if op in ("int16", "int32"):
        size = 2 if op == "int16" else 4
        if n < size:
            return "noop"
        # bias towards the header and the first bytes of sections, where the lengths live
        i = rng.randrange(min(n - size + 1, 128)) if rng.random() < 0.5 else rng.randrange(n - size + 1)
        vals = INTERESTING_16 if size == 2 else INTERESTING_32
        v = rng.choice(vals + [n, n - 1, n + 1, rng.randrange(1 << (8 * size))])
        b[i:i + size] = (v % (1 << (8 * size))).to_bytes(size, "little")
        return f"{op}@{i}={v}"
    if op == "truncate":
        k = rng.randrange(n)
        del b[k:]
        return f"truncate@{k}"
    if op == "insert":
        i = rng.randrange(n + 1)
        k = rng.choice([1, 2, 4, 9, rng.randrange(1, 200)])
        b[i:i] = bytes(rng.randrange(256) for _ in range(k))
        return f"insert{k}@{i}"
    if op == "delete":
        i = rng.randrange(n)
        k = rng.choice([1, 2, 4, rng.randrange(1, 100)])
        del b[i:i + k]
        return f"delete{k}@{i}"
    if op == "dup":
        i = rng.randrange(n)
        k = rng.randrange(1, min(512, n - i) + 1)
        b[i:i] = b[i:i + k]
        return f"dup{k}@{i}"
    if op == "move":
        i, j = rng.randrange(n), rng.randrange(n)
        k = rng.randrange(1, 64)
        chunk = b[i:i + k]
        b[j:j + len(chunk)] = chunk
        return f"move{k}@{i}->{j}"
    if op == "zero":
        i = rng.randrange(n)
        k = rng.randrange(1, 64)
        b[i:i + k] = bytes(len(b[i:i + k]))
        return f"zero{k}@{i}"
    # tail: append bytes from another seed or random
    k = rng.randrange(1, 64)
    b += other[-k:] if rng.random() < 0.5 else bytes(rng.randrange(256) for _ in range(k))
    return f"tail{k}"


def raw_mutation(rng: random.Random, seed: Seed, other: Seed) -> tuple[bytes, str]:
    b = bytearray(seed.data)
    ops = [_raw_once(rng, b, other.data) for _ in range(rng.choice([1, 1, 1, 2, 3, 4]))]
    return bytes(b), "+".join(ops)


def splice(rng: random.Random, a: Seed, b: Seed) -> tuple[bytes, str]:
    i, j = rng.randrange(len(a.data)), rng.randrange(len(b.data))
    if rng.random() < 0.5:  # align the cut on section boundaries when possible
        i, j = _section_cut(rng, a.data) or i, _section_cut(rng, b.data) or j
    return a.data[:i] + b.data[j:], f"{a.name}[:{i}]+{b.name}[{j}:]"


def _section_cut(rng: random.Random, data: bytes) -> int | None:
    (hlen,) = struct.unpack_from("<H", data, 6)
    cuts, pos = [hlen + 4], hlen + 4
    while pos + 9 <= len(data):
        pos += 9 + struct.unpack_from("<I", data, pos + 1)[0]
        cuts.append(pos)
    return rng.choice(cuts)


# ------------------------------------------------------------------ structured mutations

@dataclass
class MutGop:
    """A GOP section as the mutators see it: records (a ``TensorRecord`` or raw bytes each), the
    words, and the container-level fields a writer would get right."""

    tensors: list  # TensorRecord | bytes
    words: np.ndarray
    identity: tuple | None = None  # version 4: (gop_index, first_frame, num_frames); None: version 3
    n_words: int | None = None  # declared word count; None = len(words)
    trailing: bytes = b""  # payload bytes after the words
    kind: int = SECTION_GOP
    length_delta: int = 0  # added to the declared section length (the CRC covers the payload)

    @classmethod
    def of(cls, g: GopRecord, version: int = 3) -> "MutGop":
        ident = (g.index or 0, g.first_frame, g.num_frames) if version >= 4 else None
        return cls([copy.deepcopy(t) for t in g.tensors], np.asarray(g.words, np.uint32).copy(), ident)


def _record(t) -> bytes:
    return t if isinstance(t, bytes) else encode_tensor(t)


def serialize_section(g: MutGop) -> bytes:
    n = len(g.words) if g.n_words is None else g.n_words
    ident = b"" if g.identity is None else struct.pack("<III", *(v % (1 << 32) for v in g.identity))
    payload = (ident + b"".join(_record(t) for t in g.tensors) + struct.pack("<I", n % (1 << 32))
               + np.asarray(g.words, "<u4").tobytes() + g.trailing)
    length = max(0, len(payload) + g.length_delta) % (1 << 32)
    return struct.pack("<BII", g.kind % 256, length, zlib.crc32(payload)) + payload


def serialize(header: Header, gops: list) -> bytes:
    """Header and sections (``GopRecord`` or ``MutGop``) with valid CRCs, in the header's version
    (a ``GopRecord`` of version 4 gets its position as its index)."""
    return encode_header(header) + b"".join(
        serialize_section(g) if isinstance(g, MutGop) else encode_gop(g, i, header.version)
        for i, g in enumerate(gops))


def _clamp(v: int, bits: int, signed: bool = False) -> int:
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    return max(lo, min(hi, int(v)))


def _pick_int(rng: random.Random, current: int, bits: int, extra: list[int] = ()) -> int:
    cands = [0, 1, 2, current - 1, current + 1, current * 2, current // 2, (1 << bits) - 1,
             (1 << (bits - 1)), rng.randrange(1 << bits)] + list(extra)
    return _clamp(rng.choice(cands), bits)


HEADER_FIELDS = ["width", "height", "num_frames", "fps", "gop_frames", "num_gops", "digest",
                 "pe_freqs", "pe_base", "embed_dim", "grid_channels", "grid_anchors", "channels",
                 "strides", "blocks", "coded"]


def mutate_header(rng: random.Random, h: Header, inits_digests: list[bytes] = ()) -> tuple[Header, str]:
    f = rng.choice(HEADER_FIELDS)
    c = h.config
    if f in ("width", "height"):
        v = _pick_int(rng, getattr(h, f), 16, [MAX_DIM, MAX_DIM + 1])
        return replace(h, **{f: v}), f"{f}={v}"
    if f in ("num_frames", "gop_frames", "num_gops"):
        v = _pick_int(rng, getattr(h, f), 32, [MAX_FRAMES, MAX_FRAMES + 1])
        return replace(h, **{f: v}), f"{f}={v}"
    if f == "coded":  # the size the networks draw: within the output, at its edges, past it
        cw = _pick_int(rng, h.coded_width, 16, [h.width, h.width + 1, max(1, h.width // 8)])
        ch = _pick_int(rng, h.coded_height, 16, [h.height, h.height + 1, max(1, h.height // 8)])
        return replace(h, coded=(cw, ch)), f"coded={cw}x{ch}"
    if f == "fps":
        n = _pick_int(rng, h.fps.numerator, 32, [1_000_000, 1_000_001])
        d = _pick_int(rng, h.fps.denominator, 32, [1_000_000, 1_000_001])
        h2 = replace(h)
        h2.fps = _RawFps(n, d)  # Fraction would normalise or reject the terms
        return h2, f"fps={n}/{d}"
    if f == "digest":
        d = rng.choice([bytes(INIT_ID_BYTES), bytes(rng.randrange(256) for _ in range(INIT_ID_BYTES)),
                        bytes([0] * (INIT_ID_BYTES - 1) + [1])] + list(inits_digests))
        return replace(h, init_digest=d), f"digest={d.hex()[:8]}"
    if f == "pe_base":
        v = rng.choice([0.0, -1.0, 1.0, 4.0, 4.0001, 0.9999, float("nan"), float("inf"),
                        1e-45, 3.4e38, c.pe_base + 1e-3])
        return replace(h, config=_cfg(c, pe_base=v)), f"pe_base={v}"
    if f in ("pe_freqs", "grid_anchors"):
        v = _pick_int(rng, getattr(c, f), 8, [64, 65])
        return replace(h, config=_cfg(c, **{f: v})), f"{f}={v}"
    if f in ("embed_dim", "grid_channels"):
        v = _pick_int(rng, getattr(c, f), 16, [1024, 1025, 256, 257])
        return replace(h, config=_cfg(c, **{f: v})), f"{f}={v}"
    if f == "channels":
        ch = list(c.channels)
        i = rng.randrange(len(ch))
        ch[i] = _pick_int(rng, ch[i], 16, [1024, 1025])
        return replace(h, config=_cfg(c, channels=tuple(ch))), f"channels={ch}"
    if f == "strides":
        st = list(c.strides)
        i = rng.randrange(len(st))
        st[i] = _pick_int(rng, st[i], 8, [8, 9])
        return replace(h, config=_cfg(c, strides=tuple(st))), f"strides={st}"
    # blocks: add or drop a block
    ch, st = list(c.channels), list(c.strides)
    if rng.random() < 0.5 and len(ch) > 1:
        ch.pop(), st.pop()
    else:
        k = rng.choice([1, 1, 5])
        ch += [rng.choice([1, 4, 1024])] * k
        st += [rng.choice([1, 2, 8])] * k
    return replace(h, config=_cfg(c, channels=tuple(ch), strides=tuple(st))), f"blocks={ch}/{st}"


def poke_header(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Write a boundary value into one fixed-header field at its v2 offset, then fix the header
    CRC: reaches what the writer cannot produce (version bytes, header length, block count that
    disagrees with the length, raw pe_base bits)."""
    b = bytearray(data)
    name = rng.choice(list(HEADER_LAYOUT) + ["channel_bytes", "stride_bytes"])
    n_blocks = b[58] if len(b) > 58 else 1
    fixed = FIXED_HEADER_V2 if len(b) > 4 and b[4] == 2 else FIXED_HEADER
    if name in ("coded_width", "coded_height") and fixed == FIXED_HEADER_V2:
        name = "channel_bytes"  # a version-2 file has no coded size
    if name in ("channel_bytes", "stride_bytes"):
        off = fixed + (0 if name == "channel_bytes" else 2 * n_blocks)
        size = 2 if name == "channel_bytes" else 1
        off += size * rng.randrange(max(1, n_blocks))
        fmt_ = "H" if size == 2 else "B"
    else:
        off, fmt_ = HEADER_LAYOUT[name]
    if fmt_ == "4s":
        v = rng.choice([b"NERW", b"nerv", b"\0\0\0\0", b"NER\0"])
    elif fmt_ == "16s":
        v = rng.choice([bytes(16), b"\xff" * 16, bytes(rng.randrange(256) for _ in range(16))])
    elif fmt_ == "f":
        v = struct.unpack("<f", struct.pack("<I", rng.choice(
            [0x7FC00000, 0x7F800000, 0xFF800000, 0x3F800000, 0x40800000, 0x40800001, 0x3F7FFFFF,
             0x00000001, 0x80000000, rng.randrange(1 << 32)])))[0]
    else:
        bits = 8 * struct.calcsize(fmt_)
        cur = struct.unpack_from("<" + fmt_, b, off)[0] if off + bits // 8 <= len(b) else 0
        width, height = struct.unpack_from("<HH", b, 8) if len(b) >= 12 else (1, 1)
        extra = {"version_major": [1, 2, 3, 4, 5, 0, 16, 255],
                 "header_length": [fixed, fixed + 3 * n_blocks - 1, fixed + 3 * n_blocks + 1,
                                   FIXED_HEADER_V2 + 3 * n_blocks, FIXED_HEADER + 3 * n_blocks, 1024, 1025],
                 "coded_width": [0, 1, width, width + 1], "coded_height": [0, 1, height, height + 1],
                 }.get(name, [])
        v = _clamp(rng.choice(extra), bits) if extra and rng.random() < 0.6 else _pick_int(rng, cur, bits, extra)
    if off + struct.calcsize(fmt_) > len(b):
        return data, f"hdr.{name}:short"
    struct.pack_into("<" + fmt_, b, off, v)
    return fix_header_crc(bytes(b)), f"hdr.{name}={v if not isinstance(v, bytes) else v[:4].hex()}"


class _RawFps:
    """A frame rate whose terms are written as given (Fraction would reduce or reject them)."""

    def __init__(self, n: int, d: int) -> None:
        self.numerator, self.denominator = n, d


class _Cfg:
    """A NeRVConfig stand-in that skips validation, so any field value can be serialized."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


def _cfg(c, **kw):
    d = dict(pe_freqs=c.pe_freqs, pe_base=c.pe_base, embed_dim=c.embed_dim,
             grid_channels=c.grid_channels, grid_anchors=c.grid_anchors, channels=c.channels,
             strides=c.strides)
    d.update(kw)
    return _Cfg(**d)


def _varint_raw(n: int) -> bytes:
    from bitstreams.format import _varint
    return _varint(n)


def raw_record(rng: random.Random, t: TensorRecord) -> tuple[bytes, str]:
    """A tensor record the writer would never produce."""
    step = np.asarray([t.step], "<f2").tobytes()
    kind = rng.choice(["overlong", "six", "unterminated", "over32", "step_only", "no_R", "extra_R",
                       "half_step"])
    K = int(t.K)
    if kind == "overlong":  # K in more bytes than needed (still <= 5): accepted by LEB128 readers
        k = rng.randrange(1, 5)
        raw = bytes([(K >> (7 * i) & 0x7F) | 0x80 for i in range(k)]) + bytes([K >> (7 * k) & 0x7F])
        return step + raw + (struct.pack("<H", t.R) if K else b""), f"overlong{k + 1}"
    if kind == "six":
        return step + b"\x80" * 5 + b"\x00" + struct.pack("<H", t.R), "varint6"
    if kind == "unterminated":
        return step + b"\xff" * rng.randrange(1, 5), "unterminated"
    if kind == "over32":
        return step + b"\xff\xff\xff\xff" + bytes([rng.randrange(0x10, 0x80)]) + b"\0\0", "over32"
    if kind == "step_only":
        return step, "step_only"
    if kind == "no_R":  # K > 0 without its R (the next record shifts by two bytes)
        return step + _varint_raw(max(K, 1)), "no_R"
    if kind == "extra_R":  # K = 0 followed by an R anyway
        return step + b"\x00" + struct.pack("<H", t.R or 1), "extra_R"
    return step[:1], "half_step"


STEP_VALUES = [np.nan, np.inf, -np.inf, -1.0, -0.0, 0.0, 65504.0, 6e-8, -6e-8, 1e-5, 1.0]


def mutate_tensor(rng: random.Random, gops: list[MutGop], shapes: list) -> str:
    if not gops:
        return "no-gops"
    gi = rng.randrange(len(gops))
    g = gops[gi]
    if not g.tensors:
        return "no-tensors"
    ti = rng.randrange(len(g.tensors))
    t = g.tensors[ti]
    f = rng.choice(["step", "step", "K", "K", "R", "R", "raw", "raw", "zero_one", "zero_all",
                    "zero_all_keep", "words_flip", "words_trunc", "words_extend", "words_zero_last",
                    "words_empty", "words_random", "words_other", "n_words", "trailing", "kind",
                    "length", "swap", "drop", "duplicate", "other_gop"])
    tag = f"gop{gi}.t{ti}.{f}"
    if isinstance(t, bytes) and f in ("step", "K", "R", "raw", "zero_one"):
        return tag + ":raw"
    if f == "step":
        t.step = np.float16(rng.choice(STEP_VALUES + [float(np.frombuffer(
            struct.pack("<H", rng.randrange(1 << 16)), "<f2")[0])]))
        tag += f"={float(t.step)}"
    elif f == "K":
        K = int(t.K)
        t.K = rng.choice([0, 1, K - 1, K + 1, 2 * K, MAX_LEVEL, MAX_LEVEL + 1, 65535, (1 << 32) - 1,
                          1 << 32, 1 << 35])
        t.K = max(0, t.K)
        if t.K and not t.R:
            t.R = rng.choice([0, 1, 30000, 65535])
        tag += f"={t.K}"
    elif f == "R":
        t.R = _clamp(rng.choice([0, 1, 2, t.R - 1, t.R + 1, t.R + 1000, 32768, 65534, 65535,
                                 rng.randrange(1 << 16)]), 16)
        tag += f"={t.R}"
    elif f == "raw":
        g.tensors[ti], what = raw_record(rng, t)
        tag += f"={what}"
    elif f == "zero_one":  # this tensor's levels are no longer coded: the stream shifts
        t.K, t.R = 0, 0
    elif f in ("zero_all", "zero_all_keep"):  # every K = 0, the words kept or dropped
        for x in g.tensors:
            if isinstance(x, TensorRecord):
                x.K, x.R = 0, 0
        if f == "zero_all":
            g.words = np.zeros(0, np.uint32)
    elif f.startswith("words"):
        w = g.words.copy()
        if f == "words_flip" and len(w):
            i = rng.randrange(len(w))
            w[i] ^= np.uint32(1 << rng.randrange(32))
        elif f == "words_trunc" and len(w):
            w = w[:rng.randrange(len(w))] if rng.random() < 0.5 else w[1:]
        elif f == "words_extend":
            extra = np.array([rng.randrange(1 << 32) for _ in range(rng.choice([1, 2, 50]))], np.uint32)
            w = np.concatenate([extra, w]) if rng.random() < 0.5 else np.concatenate([w, extra])
        elif f == "words_zero_last":
            w = np.concatenate([w, np.zeros(1, np.uint32)])
        elif f == "words_empty":
            w = np.zeros(0, np.uint32)
        elif f == "words_random":
            w = np.array([rng.randrange(1 << 32) for _ in range(max(1, len(w)))], np.uint32)
        elif f == "words_other":
            w = rng.choice(gops).words.copy()
        g.words = w
    elif f == "n_words":  # the declared count disagrees with the words present
        n = len(g.words)
        g.n_words = rng.choice([0, 1, n - 1, n + 1, 2 * n + 7, (1 << 32) - 1, 1 << 30])
        tag += f"={g.n_words}"
    elif f == "trailing":
        g.trailing = bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 3, 4, 5, 17])))
    elif f == "kind":
        g.kind = rng.choice([0, 2, 7, 255])
    elif f == "length":
        g.length_delta = rng.choice([-1, 1, -4, 4, -100, 1 << 31])
    elif f == "swap" and len(g.tensors) > 1:
        j = rng.randrange(len(g.tensors))
        g.tensors[ti], g.tensors[j] = g.tensors[j], g.tensors[ti]
    elif f == "drop":
        del g.tensors[ti]
    elif f == "duplicate":
        g.tensors.insert(ti, copy.deepcopy(t))
    elif f == "other_gop" and len(gops) > 1:
        other = rng.choice(gops)
        if other.tensors:
            g.tensors[ti] = copy.deepcopy(rng.choice(other.tensors))
    return tag


def mutate_sections(rng: random.Random, gops: list[MutGop]) -> str:
    if not gops:
        return "no-gops"
    gi = rng.randrange(len(gops))
    f = rng.choice(["order", "missing", "extra", "identity"])
    if f == "identity" and gops[gi].identity is not None:  # version 4: the section's own claim
        k = rng.randrange(3)
        ident = list(gops[gi].identity)
        ident[k] = rng.choice([ident[k] + 1, ident[k] - 1, 0, 1, (1 << 32) - 1, rng.randrange(1 << 32)])
        gops[gi].identity = tuple(ident)
    elif f == "order" and len(gops) > 1:
        i, j = rng.sample(range(len(gops)), 2)
        gops[i], gops[j] = gops[j], gops[i]
    elif f == "missing":
        del gops[gi]  # by index: records hold arrays, == is not usable
    elif f == "extra":
        gops.insert(gi, copy.deepcopy(gops[gi]))
    return f"sections.{f}"


def structured(rng: random.Random, seed: Seed, inits_digests: list[bytes] = ()) -> tuple[bytes, str]:
    h = copy.deepcopy(seed.header)
    gops = [MutGop.of(g, h.version) for g in seed.gops]
    tags, pokes = [], 0
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        r = rng.random()
        if r < 0.2:
            h, t = mutate_header(rng, h, inits_digests)
        elif r < 0.3:
            pokes += 1
            continue
        elif r < 0.9:
            t = mutate_tensor(rng, gops, seed.shapes)
        else:
            t = mutate_sections(rng, gops)
        tags.append(t)
    try:
        data = serialize(h, gops)
    except (struct.error, OverflowError, ValueError, TypeError) as e:  # unrepresentable value
        return seed.data, "unserializable:" + type(e).__name__
    for _ in range(pokes):
        data, t = poke_header(rng, data)
        tags.append(t)
    return data, "+".join(tags)


def resize(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    """Claim another frame count / GOP length / frame size, keeping the file consistent."""
    h = copy.deepcopy(seed.header)
    frames = rng.choice([1, 2, 7, 1000, 100_000, MAX_FRAMES, MAX_FRAMES + 1, 1 << 31])
    gop = rng.choice([frames, 1, 2, max(1, frames // 2)]) if frames < 1 << 31 else frames
    ngops = -(-frames // gop)
    if ngops > 64:  # one section per GOP: keep the file small, use one long GOP instead
        gop, ngops = frames, 1
    w = rng.choice([h.width, 1, MAX_DIM, MAX_DIM + 1, 65535])
    hh = rng.choice([h.height, 1, MAX_DIM, 4096])
    zero = rng.random() < 0.5  # every K = 0: a valid stream whatever the new grid size
    coded = rng.choice([h.coded, None, (1, 1), (max(1, w // 4), max(1, hh // 4)), (w, hh)])
    h = replace(h, width=w, height=hh, num_frames=frames, gop_frames=gop, num_gops=ngops, coded=coded)
    try:
        gops = [zero_gop(h, 0, 1) if zero else copy.deepcopy(seed.gops[0]) for _ in range(ngops)]
        data = serialize(h, gops)
    except (struct.error, OverflowError, ValueError, ZeroDivisionError) as e:
        return seed.data, "unserializable:" + type(e).__name__
    return data, f"{w}x{hh}x{frames}/gop{gop}" + (":zero" if zero else "")


def synth(rng: random.Random) -> tuple[bytes, str]:
    """A stream for a random architecture, from scratch, with correctly or wrongly coded levels."""
    from codec.entropy import LaplaceModel, encode_tensors
    from metanerv.model import NeRVConfig

    nb = rng.randrange(1, 4)
    cfg = NeRVConfig(pe_freqs=rng.randrange(1, 6), pe_base=rng.choice([1.0, 1.25, 2.0, 4.0]),
                     embed_dim=rng.randrange(1, 9), grid_channels=rng.randrange(1, 5),
                     grid_anchors=rng.randrange(1, 4),
                     channels=tuple(rng.randrange(1, 7) for _ in range(nb)),
                     strides=tuple(rng.randrange(1, 4) for _ in range(nb)))
    w, hgt = rng.randrange(1, 40), rng.randrange(1, 40)
    frames = rng.randrange(1, 6)
    gop = rng.randrange(1, frames + 1)
    coded = (rng.randrange(1, w + 1), rng.randrange(1, hgt + 1)) if rng.random() < 0.5 else None
    h = Header(w, hgt, frames, Fraction(rng.randrange(1, 61)), gop, -(-frames // gop), cfg, coded=coded)
    shapes = param_shapes(cfg, h.grid_hw)
    style = rng.choice(["coded", "coded", "coded", "random_words", "wrong_R", "zero", "zero_some"])
    gops = []
    for gi in range(h.num_gops):
        levels, models, steps = [], [], []
        for _, shape in shapes:
            n = math.prod(shape)
            K = rng.choice([0, 1, 1, 2, 3, 7, 100, rng.randrange(1, 2000), MAX_LEVEL])
            if style == "zero" or (style == "zero_some" and rng.random() < 0.5):
                K = 0
            R = rng.choice([0, 1, 1000, 30000, 50000, 65000, 65535, rng.randrange(1 << 16)])
            spread = rng.choice([0, 1, K])
            lv = np.array([rng.randint(-min(spread, K), min(spread, K)) for _ in range(n)], np.int64)
            if K and n and rng.random() < 0.5:
                lv[rng.randrange(n)] = rng.choice([K, -K])
            levels.append(lv)
            models.append(LaplaceModel(K, R if K else 0))
            steps.append(np.float16(rng.choice([0.0, 1e-4, 0.01, 0.1, 1.0, 100.0, 65504.0])))
        words = encode_tensors(levels, models)
        tensors = [TensorRecord(s, m.K, m.R) for s, m in zip(steps, models)]
        if style == "random_words" and len(words):
            words = np.array([rng.randrange(1 << 32) for _ in range(len(words))], np.uint32)
        elif style == "wrong_R":
            coded = [t for t in tensors if t.K]
            if coded:
                t = rng.choice(coded)
                t.R = (t.R + rng.choice([1, 100, 30000])) % (1 << 16)
        gops.append(GopRecord(gi * gop, min(gop, frames - gi * gop), tensors, words))
    return serialize(h, gops), f"synth:{style}:{cfg.channels}/{cfg.strides}@{w}x{hgt}x{frames}"


# ------------------------------------------------------------------ one case

STRATEGIES = [("raw", 0.28), ("raw+crc", 0.25), ("splice", 0.06), ("field", 0.29), ("resize", 0.04),
              ("synth", 0.06), ("seed", 0.02)]

_DIGESTS: dict[tuple, list[bytes]] = {}


def init_digests(inits: list[str]) -> list[bytes]:
    """The 16-byte ids of the corpus inits and the shipped one (memoized)."""
    key = tuple(inits)
    if key not in _DIGESTS:
        from metanerv.init_file import DEFAULT_INIT, load_init
        out = []
        for p in list(inits) + [str(DEFAULT_INIT)]:
            try:
                out.append(load_init(p).digest[:INIT_ID_BYTES])
            except Exception:  # noqa: BLE001 - a missing shipped init: fewer choices
                pass
        _DIGESTS[key] = out
    return _DIGESTS[key]


def make_case(rng: random.Random, seeds: list[Seed], inits: list[str]) -> Case:
    r, acc = rng.random(), 0.0
    strategy = STRATEGIES[-1][0]
    for name, p in STRATEGIES:
        acc += p
        if r < acc:
            strategy = name
            break
    seed = rng.choice(seeds)
    other = rng.choice(seeds)
    init = list(inits) if rng.random() < 0.93 else []  # sometimes the init is missing
    if strategy in ("raw", "raw+crc"):
        data, detail = raw_mutation(rng, seed, other)
        if strategy == "raw+crc":
            data = fix_crcs(data, fix_lengths=rng.random() < 0.5)
    elif strategy == "splice":
        data, detail = splice(rng, seed, other)
        if rng.random() < 0.5:
            strategy = "splice+crc"
            data = fix_crcs(data, fix_lengths=True)
    elif strategy == "field":
        data, detail = structured(rng, seed, init_digests(inits))
    elif strategy == "resize":
        data, detail = resize(rng, seed)
    elif strategy == "synth":
        data, detail = synth(rng)
        seed = Seed("synth", b"", None, [], None)  # type: ignore[arg-type]
    else:
        data, detail = seed.data, "unmodified"
        init = [seed.init] if seed.init else []
    return Case(data, strategy, detail, init, seed.name)
