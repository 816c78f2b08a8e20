"""Deterministic generation of hostile ``.nerv`` inputs from the seed corpus.

``make_case(rng, seeds)`` returns one test input. Strategies:

* ``raw``: 1-4 stacked byte-level mutations (bit flips, interesting bytes and integers,
  truncation, insertion, deletion, duplication, chunk moves) of one seed; in half of the cases
  the header and section CRCs are recomputed afterwards (``raw+crc``) so the input gets past
  the CRC checks into the parser and the entropy decoder.
* ``splice``: the head of one seed joined to the tail of another (optionally CRC-fixed).
* ``field``: parse a seed into its header and tensor records, change one to three fields
  (boundary values, off-by-ones, NaN/inf scales, huge varints, zero-frame sections, bad
  frequency tables, corrupted/truncated/extended ANS words, swapped/missing tensors...) and
  serialize it again with valid lengths and CRCs.
* ``resize``: a consistent header+section rewrite claiming a different frame count / GOP
  length / frame size (what a decompression bomb looks like).
* ``synth``: a stream built from scratch for a random (valid or nearly valid) architecture,
  with random levels entropy-coded correctly or replaced by random words.
* ``seed``: an unmodified seed (must decode to the reference frames).
"""
from __future__ import annotations

import copy
import math
import random
import struct
import zlib
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from bitstreams.format import (
    MAX_BITS, MAX_DIM, MAX_FRAMES, MIN_BITS, GopRecord, Header, TensorRecord, encode_gop,
    encode_header,
)

CORPUS = Path(__file__).resolve().parent / "corpus"

INTERESTING_8 = [0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF]
INTERESTING_16 = [0, 1, 2, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF, 16384, 16385, 1024, 1025]
INTERESTING_32 = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 10_000_000,
                  10_000_001, 1_000_000, 1_000_001, 32_000_000, 1 << 24, 65535, 65536]


@dataclass
class Seed:
    name: str
    data: bytes
    header: Header
    gops: list[GopRecord]
    init: str | None  # init file the seed needs (path), None for absolute coding


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
        seeds.append(Seed(name, path.read_bytes(), r.header, gops, init))
    return seeds


def all_inits(corpus: Path = CORPUS) -> list[str]:
    return [str(p) for p in sorted(corpus.glob("init_*.safetensors"))]


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

def serialize(header: Header, gops: list[GopRecord]) -> bytes:
    return encode_header(header) + b"".join(encode_gop(g) for g in gops)


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
                 "strides", "blocks"]


def mutate_header(rng: random.Random, h: Header) -> tuple[Header, str]:
    f = rng.choice(HEADER_FIELDS)
    c = h.config
    if f in ("width", "height"):
        v = _pick_int(rng, getattr(h, f), 16, [MAX_DIM, MAX_DIM + 1])
        return replace(h, **{f: v}), f"{f}={v}"
    if f in ("num_frames", "gop_frames", "num_gops"):
        v = _pick_int(rng, getattr(h, f), 32, [MAX_FRAMES, MAX_FRAMES + 1])
        return replace(h, **{f: v}), f"{f}={v}"
    if f == "fps":
        n = _pick_int(rng, h.fps.numerator, 32, [1_000_000, 1_000_001])
        d = _pick_int(rng, h.fps.denominator, 32, [1_000_000, 1_000_001])
        # Fraction would normalise; smuggle raw terms through a subclass-free trick
        h2 = replace(h)
        h2.fps = _RawFps(n, d)
        return h2, f"fps={n}/{d}"
    if f == "digest":
        d = rng.choice([bytes(32), bytes(rng.randrange(256) for _ in range(32)),
                        bytes([0] * 31 + [1])])
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


TENSOR_FIELDS = ["mode", "bits", "shape", "rank", "scales", "sym_lo", "n_sym", "counts",
                 "counts_huge", "counts_zero", "words_flip", "words_trunc", "words_extend",
                 "words_zero_last", "words_empty", "words_random", "single_symbol", "swap",
                 "drop", "duplicate", "other_gop"]


def mutate_tensor(rng: random.Random, gops: list[GopRecord]) -> str:
    if not gops:
        return "no-gops"
    g = rng.choice(gops)
    if not g.tensors:
        return "no-tensors"
    ti = rng.randrange(len(g.tensors))
    t = g.tensors[ti]
    f = rng.choice(TENSOR_FIELDS)
    tag = f"gop{g.first_frame}.t{ti}.{f}"
    if f == "mode":
        t.mode = rng.choice([0, 1, 2, 255])
    elif f == "bits":
        t.bits = rng.choice([0, 1, MIN_BITS, t.bits - 1, t.bits + 1, MAX_BITS, MAX_BITS + 1, 255])
    elif f == "shape":
        s = list(t.shape)
        i = rng.randrange(len(s))
        s[i] = _pick_int(rng, s[i], 32)
        t.shape = tuple(s)
    elif f == "rank":
        t.shape = t.shape[:-1] if len(t.shape) > 1 and rng.random() < 0.5 else t.shape + (1,)
    elif f == "scales":
        sc = np.array(t.scales, dtype=np.float16)
        i = rng.randrange(len(sc))
        sc[i] = rng.choice([np.nan, np.inf, -np.inf, -1.0, -0.0, 0.0, 65504.0, 6e-8])
        t.scales = sc
    elif f == "sym_lo":
        t.sym_lo = _clamp(rng.choice([t.sym_lo - 1, t.sym_lo + 1, -32768, 32767, 0,
                                      -(1 << (t.bits - 1))]), 16, signed=True)
    elif f == "n_sym":
        n = _clamp(rng.choice([0, 1, len(t.counts) + 1, len(t.counts) - 1, 65535]), 16)
        c = np.zeros(n, np.uint64)
        c[:min(n, len(t.counts))] = np.asarray(t.counts, np.uint64)[:n]
        t.counts = c
    elif f == "counts":
        c = np.asarray(t.counts, np.int64).copy()
        i = rng.randrange(len(c))
        delta = rng.choice([-1, 1, 2, -int(c[i])])
        c[i] = max(0, c[i] + delta)
        if rng.random() < 0.5 and len(c) > 1:  # keep the sum right, move mass around
            j = rng.randrange(len(c))
            c[j] = max(0, c[j] - (c.sum() - sum(np.asarray(t.counts, np.int64))))
        t.counts = c.astype(np.uint64)
    elif f == "counts_huge":
        c = np.asarray(t.counts, np.uint64).copy()
        c[rng.randrange(len(c))] = rng.choice([1 << 32, (1 << 35) - 1, 1 << 40, (1 << 63)])
        t.counts = c
    elif f == "counts_zero":
        c = np.asarray(t.counts, np.uint64).copy()
        nz = np.flatnonzero(c)
        if len(nz) > 1:  # move a symbol's mass onto another one: the sum stays right
            a, b = rng.sample(list(nz), 2)
            c[b] += c[a]
            c[a] = 0
        t.counts = c
    elif f.startswith("words"):
        w = np.asarray(t.words, np.uint32).copy()
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
        t.words = w
    elif f == "single_symbol":
        t.counts = np.array([math.prod(t.shape)], np.uint64)
        t.sym_lo = 0
        if rng.random() < 0.5:
            t.words = np.zeros(0, np.uint32)
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


def mutate_gop_fields(rng: random.Random, gops: list[GopRecord]) -> str:
    if not gops:
        return "no-gops"
    gi = rng.randrange(len(gops))
    g = gops[gi]
    f = rng.choice(["first_frame", "num_frames", "order", "missing", "extra"])
    if f == "first_frame":
        g.first_frame = _pick_int(rng, g.first_frame, 32)
    elif f == "num_frames":
        g.num_frames = _pick_int(rng, g.num_frames, 32)  # includes zero-frame sections
    elif f == "order" and len(gops) > 1:
        i, j = rng.sample(range(len(gops)), 2)
        gops[i], gops[j] = gops[j], gops[i]
    elif f == "missing":
        del gops[gi]  # by index: records hold arrays, == is not usable
    else:
        gops.append(copy.deepcopy(g))
    return f"gop.{f}"


def structured(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    h = copy.deepcopy(seed.header)
    gops = copy.deepcopy(seed.gops)
    tags = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        r = rng.random()
        if r < 0.3:
            h, t = mutate_header(rng, h)
        elif r < 0.85:
            t = mutate_tensor(rng, gops)
        else:
            t = mutate_gop_fields(rng, gops)
        tags.append(t)
    try:
        data = serialize(h, gops)
    except (struct.error, OverflowError, ValueError, TypeError) as e:  # unrepresentable value
        return seed.data, "unserializable:" + type(e).__name__
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
    h = replace(h, width=w, height=hh, num_frames=frames, gop_frames=gop, num_gops=ngops)
    base = seed.gops[0]
    gops = []
    for i in range(ngops):
        g = copy.deepcopy(base)
        g.first_frame, g.num_frames = i * gop, min(gop, frames - i * gop)
        gops.append(g)
    try:
        data = serialize(h, gops)
    except (struct.error, OverflowError) as e:
        return seed.data, "unserializable:" + type(e).__name__
    return data, f"{w}x{hh}x{frames}/gop{gop}"


def synth(rng: random.Random) -> tuple[bytes, str]:
    """A stream for a random architecture, from scratch, with correctly or randomly coded levels."""
    from codec.entropy import encode_levels
    from metanerv.model import NeRVConfig, decode_param_shapes, grid_size_for

    nb = rng.randrange(1, 4)
    cfg = NeRVConfig(pe_freqs=rng.randrange(1, 6), pe_base=rng.choice([1.0, 1.25, 2.0, 4.0]),
                     embed_dim=rng.randrange(1, 9), grid_channels=rng.randrange(1, 5),
                     grid_anchors=rng.randrange(1, 4),
                     channels=tuple(rng.randrange(1, 7) for _ in range(nb)),
                     strides=tuple(rng.randrange(1, 4) for _ in range(nb)))
    w, hgt = rng.randrange(1, 40), rng.randrange(1, 40)
    frames = rng.randrange(1, 6)
    gop = rng.randrange(1, frames + 1)
    h = Header(w, hgt, frames, Fraction(rng.randrange(1, 61)), gop, -(-frames // gop), cfg)
    shapes = decode_param_shapes(cfg, grid_size_for(hgt, w, cfg))
    style = rng.choice(["coded", "coded", "random_words", "single"])
    gops = []
    for gi in range(h.num_gops):
        g = GopRecord(gi * gop, min(gop, frames - gi * gop))
        for _, shape in shapes:
            bits = rng.randrange(MIN_BITS, MAX_BITS + 1)
            q = (1 << (bits - 1)) - 1
            n = math.prod(shape)
            spread = rng.choice([0, 1, q])
            levels = np.array([rng.randint(-spread, spread) for _ in range(n)], np.int64)
            lo, counts, words = encode_levels(levels)
            if style == "random_words" and len(counts) > 1:
                words = np.array([rng.randrange(1 << 32) for _ in range(max(1, len(words)))], np.uint32)
            elif style == "single":
                lo, counts, words = 0, np.array([n], np.uint32), np.zeros(0, np.uint32)
            m = shape[0] if len(shape) >= 2 else 1
            scales = np.array([rng.choice([0.0, 0.01, 0.1, 1.0, 100.0, 65504.0]) for _ in range(m)], np.float16)
            g.tensors.append(TensorRecord(0, bits, shape, scales, lo, counts, words))
        gops.append(g)
    return serialize(h, gops), f"synth:{style}:{cfg.channels}/{cfg.strides}@{w}x{hgt}x{frames}"


# ------------------------------------------------------------------ one case

STRATEGIES = [("raw", 0.30), ("raw+crc", 0.25), ("splice", 0.06), ("field", 0.27), ("resize", 0.04),
              ("synth", 0.06), ("seed", 0.02)]


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
        data, detail = structured(rng, seed)
    elif strategy == "resize":
        data, detail = resize(rng, seed)
    elif strategy == "synth":
        data, detail = synth(rng)
        seed = Seed("synth", b"", None, [], None)  # type: ignore[arg-type]
    else:
        data, detail = seed.data, "unmodified"
        init = [seed.init] if seed.init else []
    return Case(data, strategy, detail, init, seed.name)
