"""Hostile and broken .nerv files: limits before allocation, contained failures, clear messages.

Every failure must be a ``NervcError`` (``BitstreamError`` subclasses it) with a one-line
message; nothing may allocate what a header merely claims. Crafted inputs are built from the
fuzz seed corpus (tests/fuzz/corpus) with the fuzzer's serializer, so CRCs are valid and the
checks under test are the ones that run after the CRC.
"""
from __future__ import annotations

import copy
import os
import stat
import struct
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import codec
from bitstreams import BitstreamError, BitstreamReader, write_bitstream
from bitstreams import format as fmt
from codec.entropy import EntropyError, decode_levels, encode_levels
from nervcore.errors import NervcError
from tests.fuzz.harness import message_problem, peak_rss_kb
from tests.fuzz.mutate import CORPUS, _cfg, _RawFps, fix_crcs, load_seeds, serialize

INITS = [str(p) for p in sorted(CORPUS.glob("init_*.safetensors"))]


@pytest.fixture(scope="module")
def seeds():
    return {s.name: s for s in load_seeds()}


@pytest.fixture()
def tiny(seeds):
    """A delta-coded seed with 2 GOPs (tinyA)."""
    return copy.deepcopy(seeds["seed_tinyA_8x8_b3_p05_gop2.nerv"])


def _write(tmp_path: Path, data: bytes, name: str = "x.nerv") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _rejected(path, match: str, init=INITS, **kw) -> str:
    """Decode must raise a NervcError matching ``match`` with a readable one-line message."""
    with pytest.raises(NervcError, match=match) as ei:
        codec.decode(path, None, device="cpu", init=init, **kw)
    msg = str(ei.value)
    assert message_problem(msg) is None, msg
    return msg


def test_every_seed_configuration_decodes(seeds):
    for s in seeds.values():
        h = s.header
        r = codec.decode(CORPUS / s.name, None, device="cpu", init=INITS)
        assert r.frames.shape == (h.num_frames, h.height, h.width, 3), s.name


def test_crafted_giant_header_rejected_in_milliseconds(tmp_path, tiny):
    """65535 x 65535 x 1e6 frames in 1e6 GOPs: refused from the header alone."""
    h = replace(tiny.header, width=65535, height=65535, num_frames=1_000_000, gop_frames=1,
                num_gops=1_000_000)
    p = _write(tmp_path, serialize(h, tiny.gops))
    rss0 = peak_rss_kb()
    t0 = time.perf_counter()
    with pytest.raises(BitstreamError, match="frame size 65535x65535 out of range"):
        BitstreamReader(p)
    with pytest.raises(BitstreamError, match="frame size"):
        codec.decode(p, None, device="cpu")
    dt = time.perf_counter() - t0
    print(f"giant header rejected twice in {dt * 1000:.1f} ms, peak RSS +{(peak_rss_kb() - rss0) / 1024:.1f} MiB")
    assert dt < 10  # generous: the point is the message above, not the timing


def test_in_limits_decompression_bomb_is_refused_before_allocating(tmp_path, seeds, monkeypatch):
    """16384 x 16384 x 10 million frames in one GOP is a *valid* stream of a few kB: the reader
    accepts it, the decoder refuses to plan 8 PB of output and points at --frames."""
    s = seeds["seed_tinyB_6x5_b8_p05.nerv"]
    h = replace(s.header, width=16384, height=16384, num_frames=fmt.MAX_FRAMES,
                gop_frames=fmt.MAX_FRAMES, num_gops=1)
    g = copy.deepcopy(s.gops[0])
    g.num_frames = fmt.MAX_FRAMES
    # tensors must match the new grid for the stream to be valid: make them single-symbol
    from metanerv.model import decode_param_shapes
    g.tensors = []
    for name, shape in decode_param_shapes(h.config, h.grid_hw):
        m = shape[0] if len(shape) >= 2 else 1
        g.tensors.append(fmt.TensorRecord(0, 2, shape, np.zeros(m, np.float16), 0,
                                          np.array([int(np.prod(shape))], np.uint32), np.zeros(0, np.uint32)))
    p = _write(tmp_path, serialize(h, [g]))
    print(f"bomb: {p.stat().st_size} bytes")
    BitstreamReader(p).read_gop(0)  # valid
    rss0 = peak_rss_kb()
    t0 = time.perf_counter()
    msg = _rejected(p, r"decode memory limit.*--frames")
    dt = time.perf_counter() - t0
    print(f"bomb refused in {dt * 1000:.1f} ms, peak RSS +{(peak_rss_kb() - rss0) / 1024:.1f} MiB: {msg}")
    # a single frame is still too large under a small budget, and the message says so
    monkeypatch.setenv("NERVC_DECODE_MEMORY", "256M")
    _rejected(p, "decode memory limit of 256.0 MiB", frames=slice(0, 1))
    monkeypatch.setenv("NERVC_DECODE_MEMORY", "lots")
    _rejected(p, "NERVC_DECODE_MEMORY")


def test_small_memory_budget_shrinks_the_batch_not_the_output(seeds, monkeypatch):
    s = seeds["seed_tinyA_47x33_b7_p05_gop1.nerv"]
    ref = codec.decode(CORPUS / s.name, None, device="cpu", init=INITS).frames
    monkeypatch.setenv("NERVC_DECODE_MEMORY", "1M")
    from codec.decoder import plan_memory
    assert plan_memory(s.header, 3, 8, "x") < 8
    assert np.array_equal(codec.decode(CORPUS / s.name, None, device="cpu", init=INITS).frames, ref)


@pytest.mark.parametrize("field,value,match", [
    ("num_gops", 1_000_000, "does not match"),
    ("gop_frames", 0, "GOP length 0"),
    ("num_frames", 0, "frame count 0"),
    ("num_frames", fmt.MAX_FRAMES + 1, "frame count"),
    ("width", fmt.MAX_DIM + 1, "frame size"),
    ("height", 0, "frame size"),
])
def test_header_fields_out_of_range(tmp_path, tiny, field, value, match):
    p = _write(tmp_path, serialize(replace(tiny.header, **{field: value}), tiny.gops))
    _rejected(p, match)


def test_more_gops_than_the_file_can_hold(tmp_path, tiny):
    h = replace(tiny.header, num_frames=1_000_000, gop_frames=1, num_gops=1_000_000)
    p = _write(tmp_path, serialize(h, tiny.gops))
    t0 = time.perf_counter()
    _rejected(p, "1000000 GOPs cannot fit")
    print(f"1e6 GOPs refused in {(time.perf_counter() - t0) * 1000:.1f} ms")


@pytest.mark.parametrize("cfg,size,match", [
    (dict(channels=(1024,) * 3, strides=(1, 1, 1)), 8, "multiply-accumulates per pixel"),
    (dict(channels=(1024,) * 8, strides=(1,) * 8), 8, "parameters exceeds the limit"),
    (dict(grid_channels=256, grid_anchors=64), 4096, "grid of"),
    (dict(pe_base=float("nan")), 8, "positional encoding base"),
    (dict(strides=(9, 2)), 8, "strides"),
    (dict(channels=(0, 4)), 8, "channels"),
])
def test_model_limits(tmp_path, tiny, cfg, size, match):
    h = replace(tiny.header, width=size, height=size, config=_cfg(tiny.header.config, **cfg))
    p = _write(tmp_path, serialize(h, tiny.gops))
    t0 = time.perf_counter()
    _rejected(p, match)
    assert time.perf_counter() - t0 < 10


def test_fps_terms_checked_raw(tmp_path, tiny):
    h = replace(tiny.header)
    h.fps = _RawFps(0, 1)
    _rejected(_write(tmp_path, serialize(h, tiny.gops)), "frame rate 0/1")


def test_zero_frame_and_misplaced_sections(tmp_path, tiny):
    gops = copy.deepcopy(tiny.gops)
    gops[1].num_frames = 0
    _rejected(_write(tmp_path, serialize(tiny.header, gops)), r"section 1: frames 2\+0, expected 2\+1")
    _rejected(_write(tmp_path, serialize(tiny.header, tiny.gops[::-1]), "r.nerv"), "section 0: frames")
    _rejected(_write(tmp_path, serialize(tiny.header, tiny.gops[:1]), "m.nerv"), "section 1 of 2 missing")


def _varint_case(tmp_path, tiny, raw_counts: bytes, name: str) -> Path:
    """Replace the first tensor's frequency table by raw bytes (CRC fixed)."""
    gops = copy.deepcopy(tiny.gops)
    t = gops[0].tensors[0]
    head = fmt.encode_header(tiny.header)
    rec = fmt.encode_tensor(t)
    n_scales = t.shape[0] if len(t.shape) >= 2 else 1
    off = 3 + 4 * len(t.shape) + 2 * n_scales + 4  # up to and including sym_lo, n_sym
    table_len = sum(len(fmt._varint(int(c))) for c in t.counts)
    rec = rec[:off - 2] + struct.pack("<H", 1) + raw_counts + rec[off + table_len:]
    payload = struct.pack("<IIH", 0, gops[0].num_frames, len(gops[0].tensors)) + rec + \
        b"".join(fmt.encode_tensor(x) for x in gops[0].tensors[1:])
    sec0 = struct.pack("<BII", 1, len(payload), zlib.crc32(payload)) + payload
    return _write(tmp_path, head + sec0 + fmt.encode_gop(gops[1]), name)


def test_huge_varints(tmp_path, tiny):
    _rejected(_varint_case(tmp_path, tiny, b"\xff" * 9 + b"\x01", "a.nerv"), "varint longer than 5 bytes")
    _rejected(_varint_case(tmp_path, tiny, b"\xff\xff\xff\xff\x7f", "b.nerv"), "exceeds 32 bits")
    _rejected(_varint_case(tmp_path, tiny, b"\x80" * 4, "c.nerv"), "truncated|sums to")


def test_frequency_table_and_words_checks(tmp_path, tiny):
    ti = next(i for i, t in enumerate(tiny.gops[0].tensors) if len(t.counts) > 1)

    def case(name, **kw):
        gops = copy.deepcopy(tiny.gops)
        t = gops[0].tensors[ti]
        for k, v in kw.items():
            setattr(t, k, v)
        return _write(tmp_path, serialize(tiny.header, gops), name)

    t = tiny.gops[0].tensors[ti]
    n = t.numel
    _rejected(case("sum.nerv", counts=np.array([n, 1], np.uint64)), "sums to")
    _rejected(case("words.nerv", counts=np.array([n - 1, 1], np.uint64),
                   words=np.arange(1, fmt.max_words(n) + 2, dtype=np.uint32)), "coded words")
    _rejected(case("single.nerv", counts=np.array([n], np.uint64), sym_lo=0,
                   words=np.ones(1, np.uint32)), "coded words")
    _rejected(case("zero.nerv", words=np.concatenate([t.words, np.zeros(1, np.uint32)])),
              "corrupted entropy-coded data|unconsumed|do not match")
    _rejected(case("range.nerv", sym_lo=-100), "symbol range")
    # a table constriction has to squeeze: one count of 1 against n - 1 (probability < 2**-24
    # for big tensors) must still round-trip when genuinely coded
    levels = np.zeros((1 << 24) + 16, np.int64)
    levels[12345] = 1
    lo, counts, words = encode_levels(levels)
    assert np.array_equal(decode_levels(lo, counts, words, levels.size), levels)


def test_entropy_decoder_contains_rust_panics(monkeypatch):
    """pyo3's PanicException derives from BaseException: it must become an EntropyError,
    while KeyboardInterrupt still interrupts."""
    import constriction

    class PanicException(BaseException):
        pass

    class Boom:
        def __init__(self, exc):
            self.exc = exc

        def __call__(self, *a, **k):
            raise self.exc

    counts, words = np.array([3, 1], np.uint32), np.array([12345], np.uint32)
    monkeypatch.setattr(constriction.stream.stack, "AnsCoder", Boom(PanicException("index out of bounds")))
    with pytest.raises(EntropyError, match=r"corrupted entropy-coded data \(PanicException\)"):
        decode_levels(0, counts, words, 4)
    monkeypatch.setattr(constriction.stream.stack, "AnsCoder", Boom(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        decode_levels(0, counts, words, 4)


@pytest.mark.parametrize("counts,words,numel,match", [
    (np.array([], np.uint32), [], 1, "malformed"),
    (np.array([[1, 2]], np.uint32), [], 3, "malformed"),
    (np.array([-1, 2]), [], 1, "negative"),
    (np.array([2, 2], np.uint32), [7], 5, "does not match the tensor size"),
    (np.array([2, 2], np.uint32), [0], 4, "corrupted entropy-coded data"),
    (np.array([4, 0], np.uint32), [], 4, None),  # empty words decode to symbol 0: valid
])
def test_decode_levels_edge_cases(counts, words, numel, match):
    w = np.array(words, np.uint32)
    if match is None:
        assert (decode_levels(5, counts, w, numel) == 5).all()
    else:
        with pytest.raises(EntropyError, match=match):
            decode_levels(0, counts, w, numel)


# ------------------------------------------------------------------ inits

def test_missing_or_wrong_init_names_the_init(tmp_path, tiny):
    p = CORPUS / tiny.name
    digest = tiny.header.init_digest.hex()[:16]
    msg = _rejected(p, f"encoded with init {digest}.*--init PATH", init=None)
    assert "none given" in msg
    _rejected(p, f"init {digest}.*init_tinyB", init=[str(CORPUS / "init_tinyB.safetensors")])
    _rejected(p, f"init {digest}", init=[str(tmp_path / "nope.safetensors")])
    junk = _write(tmp_path, b"not safetensors", "junk.safetensors")
    _rejected(p, f"init {digest}", init=[str(junk)])


def test_hostile_init_files(tmp_path, tiny):
    """Init files are input too. A file whose digest matches (the digest is a content hash, so
    anyone can make one) but whose tensors are missing or misshapen must not crash."""
    from metanerv.init_file import load_init, save_init
    good = load_init(CORPUS / "init_tinyA.safetensors")
    variants = {
        "missing": {k: v for k, v in good.state.items() if k != "head.weight"},
        "shape": {**good.state, "mlp.0.weight": torch.zeros(3)},
        "grid": {**good.state, "grid": torch.zeros(2, 4, 0, 3)},
        "rank": {**good.state, "head.bias": torch.zeros(3, 1)},
    }
    for name, state in variants.items():
        path = tmp_path / f"{name}.safetensors"
        digest = save_init(path, good.config, state)
        p = _write(tmp_path, serialize(replace(tiny.header, init_digest=digest), tiny.gops), f"{name}.nerv")
        _rejected(p, "init", init=[str(path)])
    # metadata that is valid JSON of the wrong type
    from safetensors.torch import save_file
    bad = tmp_path / "meta.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad), metadata={"format": "nervc-init/1", "config": "[1, 2]"})
    _rejected(CORPUS / tiny.name, "init", init=[str(bad)])


def test_init_with_non_float32_pe_base_round_trips(tmp_path):
    """The header stores pe_base as f32; an init whose pe_base (1.1) is not an f32 value used to
    make every encode fail ("different model configuration")."""
    from nervcore.video_io import Video
    from metanerv.init_file import save_init
    from metanerv.model import NeRVConfig, build_model
    cfg = NeRVConfig(pe_freqs=2, pe_base=1.1, embed_dim=4, grid_channels=2, grid_anchors=1,
                     channels=(4,), strides=(2,))
    init = tmp_path / "i.safetensors"
    save_init(init, cfg, build_model(cfg, (1, 1)).state_dict())
    rng = np.random.default_rng(0)
    video = Video(rng.integers(0, 255, (2, 6, 5, 3), dtype=np.uint8), 25)
    codec.encode(video, tmp_path / "a.nerv", steps=1, init=str(init), progress=False)
    assert codec.decode(tmp_path / "a.nerv", None, device="cpu", init=[str(init)]).frames.shape == (2, 6, 5, 3)


# ------------------------------------------------------------------ files and paths

@pytest.mark.parametrize("kind", ["missing", "dir", "empty", "short", "text", "fifo", "future"])
def test_reader_entry_points_only_raise_nervc_errors(tmp_path, tiny, kind):
    p = tmp_path / "x.nerv"
    if kind == "dir":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "short":
        p.write_bytes(b"NERV\x01")
    elif kind == "text":
        p.write_text("hello, I am not a video\n" * 10)
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "future":
        data = bytearray(tiny.data)
        data[4] = 2
        p.write_bytes(fix_crcs(bytes(data)))
    match = {"missing": "no such file", "dir": "not a file", "empty": "empty file", "fifo": "not a file",
             "short": "not a .nerv file", "text": "not a .nerv file", "future": "version 2.0 is not supported"}[kind]
    with pytest.raises(BitstreamError, match=match):
        BitstreamReader(p)
    _rejected(p, match)


def test_truncations_at_every_section_boundary_and_inside(tmp_path, tiny):
    data = tiny.data
    for cut in sorted({1, 7, 8, 50, len(data) // 2, len(data) - 1} | set(range(80, len(data), 397))):
        p = _write(tmp_path, data[:cut], f"t{cut}.nerv")
        _rejected(p, "truncated|not a .nerv|CRC|header|trailing")


def test_write_bitstream_is_atomic_and_respects_umask(tmp_path, tiny):
    out = tmp_path / "o.nerv"
    old = os.umask(0o022)
    try:
        n = write_bitstream(out, tiny.header, tiny.gops)
    finally:
        os.umask(old)
    assert n == out.stat().st_size and out.read_bytes() == tiny.data
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # mkstemp alone gives 0600
    (tmp_path / "d.nerv").mkdir()
    with pytest.raises(NervcError, match="is a directory"):
        write_bitstream(tmp_path / "d.nerv", tiny.header, tiny.gops)
    with pytest.raises(NervcError, match="cannot write"):
        write_bitstream(tmp_path / "no" / "such" / "o.nerv", tiny.header, tiny.gops)

    class Stop(BaseException):
        pass

    real = os.replace

    def interrupted(*a):
        raise Stop

    os.replace = interrupted
    try:
        with pytest.raises(Stop):
            write_bitstream(out, replace(tiny.header, width=9), tiny.gops)
    finally:
        os.replace = real
    assert out.read_bytes() == tiny.data  # the old file, untouched
    assert sorted(x.name for x in tmp_path.iterdir()) == ["d.nerv", "o.nerv"]  # no temp left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_unwritable_outputs_are_nervc_errors(tmp_path, tiny):
    with pytest.raises(NervcError, match="cannot write"):
        write_bitstream("/proc/nervc-test.nerv", tiny.header, tiny.gops)
    with pytest.raises(NervcError):
        codec.decode(CORPUS / tiny.name, "/proc/nervc-test.mkv", device="cpu", init=INITS)


def test_bitstreams_imports_first():
    """``import bitstreams`` before ``codec`` used to fail with a circular import."""
    import subprocess
    r = subprocess.run([sys.executable, "-c", "import bitstreams; from bitstreams import BitstreamReader"],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.slow
def test_largest_model_decodes_within_bounded_memory(tmp_path):
    """A 27 kB stream of a ~30M-parameter model (just under MAX_DECODE_PARAMS) is valid: it
    decodes, and the worker's peak RSS stays bounded (measured in a fresh process)."""
    import json
    import math
    import subprocess
    from fractions import Fraction

    from metanerv.model import NeRVConfig
    cfg = NeRVConfig(pe_freqs=4, embed_dim=8, grid_channels=256, grid_anchors=1, channels=(200, 4), strides=(8, 8))
    h = fmt.Header(64, 64, 2, Fraction(25), 2, 1, cfg)
    g = fmt.GopRecord(0, 2)
    for _, shape in fmt.param_shapes(cfg, h.grid_hw):
        k = math.prod(shape)
        lv = np.zeros(k, np.int64)
        lv[0] = 1
        lo, c, w = encode_levels(lv)
        g.tensors.append(fmt.TensorRecord(0, 2, shape, np.full(shape[0] if len(shape) >= 2 else 1, 0.01, np.float16),
                                          lo, c, w))
    p = _write(tmp_path, serialize(h, [g]))
    r = subprocess.run([sys.executable, "-m", "tests.fuzz.run", "--replay", str(p)], capture_output=True,
                       text=True, cwd=Path(__file__).resolve().parents[1], timeout=600)
    res = json.loads(r.stdout)
    print(f"{p.stat().st_size} bytes, {sum(math.prod(s) for _, s in fmt.param_shapes(cfg, h.grid_hw))} "
          f"parameters: {res}")
    assert res["outcome"] == "ok" and res["peak_rss_mb"] < 1536
