"""Hostile and broken .nerv files (bitstream version 2): limits before allocation, contained
failures, clear messages.

Every failure must be a ``NervcError`` (``BitstreamError`` subclasses it) with a one-line
message; nothing may allocate what a header merely claims. Crafted inputs are built from the
fuzz seed corpus (tests/fuzz/corpus) with the fuzzer's serializer, so CRCs are valid and the
checks under test are the ones that run after the CRC. tests/test_parser_rejections.py has one
minimal file per rejection rule; this file is about what hostile input must not be able to do.
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
from codec.entropy import EntropyError, LaplaceModel, decode_tensors, encode_tensors, laplace_counts
from nervcore.errors import NervcError
from tests.fuzz.harness import message_problem, peak_rss_kb
from tests.fuzz.mutate import (
    CORPUS, MutGop, _cfg, _RawFps, fix_crcs, load_seeds, serialize, zero_gop,
)

INITS = [str(p) for p in sorted(CORPUS.glob("init_*.safetensors"))]
NO_INIT = bytes(fmt.INIT_ID_BYTES)


@pytest.fixture(scope="module")
def seeds():
    return {s.name: s for s in load_seeds()}


@pytest.fixture()
def tiny(seeds):
    """A delta-coded seed with 2 GOPs (tinyA, 8x8, 3 frames)."""
    return copy.deepcopy(seeds["seed_tinyA_8x8_q3_gop2.nerv"])


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
    """The corpus covers what the fuzzer needs to start from: absolute and delta streams, every
    K = 0 (no words), mixed K = 0 / K > 0, K = 32767, several GOPs."""
    ks = set()
    for s in seeds.values():
        h = s.header
        r = codec.decode(CORPUS / s.name, None, device="cpu", init=INITS)
        assert r.frames.shape == (h.num_frames, h.height, h.width, 3), s.name
        ks |= {t.K for g in s.gops for t in g.tensors}
    assert {0, 1, fmt.MAX_LEVEL} <= ks
    assert any(not s.header.has_init for s in seeds.values()) and any(s.header.has_init for s in seeds.values())
    assert any(all(len(g.words) == 0 for g in s.gops) for s in seeds.values())
    assert any(len(s.gops) >= 3 for s in seeds.values())


# ------------------------------------------------------------------ bombs and budgets

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
    """16384 x 16384 x 10 million frames in one GOP is a *valid* stream of ~150 bytes (every
    tensor K = 0): the reader accepts it, the decoder refuses to plan 7 PiB of output and points
    at --frames."""
    s = seeds["seed_tinyB_6x5_q8.nerv"]
    h = replace(s.header, width=16384, height=16384, num_frames=fmt.MAX_FRAMES,
                gop_frames=fmt.MAX_FRAMES, num_gops=1, init_digest=NO_INIT)
    p = _write(tmp_path, serialize(h, [zero_gop(h, 0, fmt.MAX_FRAMES)]))
    print(f"bomb: {p.stat().st_size} bytes")
    assert p.stat().st_size < 200
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
    s = seeds["seed_tinyA_47x33_q1_gop1.nerv"]
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


def test_missing_extra_and_swapped_sections(tmp_path, tiny):
    """Version 2 sections hold no frame numbers: a GOP is the i-th section. A missing one is
    refused, an extra one is trailing data; a zero-frame GOP (a v1 attack) cannot be expressed:
    the frame count is the header's alone, and a header declaring 0 frames is refused."""
    _rejected(_write(tmp_path, serialize(tiny.header, tiny.gops[:1]), "m.nerv"), "section 1 of 2 missing")
    _rejected(_write(tmp_path, serialize(tiny.header, tiny.gops + tiny.gops[:1]), "e.nerv"),
              r"\d+ unexpected trailing bytes")
    _rejected(_write(tmp_path, serialize(replace(tiny.header, num_frames=0), tiny.gops), "z.nerv"),
              "frame count 0 out of range")
    # swapped sections (GOPs of 2 and 1 frames): another valid stream of the same size
    swapped = codec.decode(_write(tmp_path, serialize(tiny.header, tiny.gops[::-1]), "s.nerv"), None,
                           device="cpu", init=INITS)
    assert swapped.frames.shape == (3, 8, 8, 3)


def _record_case(tmp_path, tiny, raw: bytes, name: str, ti: int = 0) -> Path:
    """The tiny seed with tensor record ``ti`` of GOP 0 replaced by raw bytes (CRCs valid)."""
    g = [MutGop.of(x) for x in tiny.gops]
    g[0].tensors[ti] = raw
    return _write(tmp_path, serialize(tiny.header, g), name)


def test_huge_varints(tmp_path, tiny):
    step = struct.pack("<H", 0x211E)
    _rejected(_record_case(tmp_path, tiny, step + b"\xff" * 9 + b"\x01", "a.nerv"), "varint longer than 5 bytes")
    _rejected(_record_case(tmp_path, tiny, step + b"\xff\xff\xff\xff\x7f" + b"\0\0", "b.nerv"), "exceeds 32 bits")
    _rejected(_record_case(tmp_path, tiny, step + b"\xff\xff\xff\xff\x0f" + b"\0\0", "c.nerv"),
              "largest level 4294967295 exceeds 32767")
    # an unterminated varint at the very end of the payload
    head = fmt.encode_header(tiny.header)
    payload = b"".join(fmt.encode_tensor(t) for t in tiny.gops[0].tensors[:-1]) + step + b"\x80" * 4
    sec = struct.pack("<BII", 1, len(payload), zlib.crc32(payload)) + payload
    _rejected(_write(tmp_path, head + sec + fmt.encode_gop(tiny.gops[1]), "d.nerv"), r"truncated \(needs 1 bytes")


def test_tensor_record_and_word_checks(tmp_path, tiny):
    """Each field a tensor record or the word count carries is checked before any table or
    tensor is built; damage inside the words is caught by the ANS decoder."""
    g0 = tiny.gops[0]
    ti = next(i for i, t in enumerate(g0.tensors) if t.K > 0)
    shapes = BitstreamReader(CORPUS / tiny.name).shapes
    coded = sum(int(np.prod(s)) for (_, s), t in zip(shapes, g0.tensors) if t.K)

    def case(name, tensor=None, **gop):
        g = copy.deepcopy(tiny.gops)
        for k, v in (tensor or {}).items():
            setattr(g[0].tensors[ti], k, v)
        for k, v in gop.items():
            setattr(g[0], k, v)
        return _write(tmp_path, serialize(tiny.header, g), name)

    for v in (np.nan, np.inf, -np.inf, -1.0, -6e-8):
        _rejected(case("step.nerv", {"step": np.float16(v)}), "bad step")
    _rejected(case("k.nerv", {"K": fmt.MAX_LEVEL + 1}), "largest level 32768 exceeds 32767")
    _rejected(case("many.nerv", words=np.arange(1, fmt.max_words(coded) + 2, dtype=np.uint32)),
              f"{fmt.max_words(coded) + 1} coded words for {coded} coded entries")
    # no words with K > 0 is valid (SPEC.md: every level -K leaves the coder empty), so
    # dropping the words of a GOP yields a stream of every level at -K, not an error
    dropped = codec.decode(case("none.nerv", words=np.zeros(0, np.uint32)), None, device="cpu", init=INITS)
    assert dropped.frames.shape == (3, 8, 8, 3)
    allzero = copy.deepcopy(tiny.gops)
    for t in allzero[0].tensors:
        t.K, t.R = 0, 0
    _rejected(_write(tmp_path, serialize(tiny.header, allzero), "z.nerv"), "coded words for 0 coded entries")
    allzero[0].words = np.zeros(0, np.uint32)  # every K = 0 and no words: valid (the init's weights)
    assert codec.decode(_write(tmp_path, serialize(tiny.header, allzero), "z0.nerv"), None, device="cpu",
                        init=INITS).frames.shape == (3, 8, 8, 3)
    _rejected(case("zero.nerv", words=np.concatenate([g0.words, np.zeros(1, np.uint32)])),
              r"GOP at frame 0: corrupted entropy-coded data \(ValueError\)")
    _rejected(case("extra.nerv", words=np.concatenate([g0.words, np.ones(1, np.uint32)])),
              r"GOP at frame 0: unconsumed entropy-coded data")
    flipped = g0.words.copy()
    flipped[len(flipped) // 2] ^= np.uint32(1 << 20)
    _rejected(case("flip.nerv", words=flipped), r"GOP at frame 0: (unconsumed|corrupted) entropy-coded data")


def test_improbable_symbols_round_trip():
    """R = 0 gives the levels +-K a count of 1 against 2**24 for level 0 (probability below
    constriction's 2**-24 precision): it must squeeze the table, not fail, and a genuinely coded
    stream must round-trip; so must K = 32767 at both ends of R."""
    assert list(laplace_counts(0, 1)) == [1, 1 << 24, 1]
    levels = np.zeros(5000, np.int64)
    levels[1234], levels[-1] = 1, -1
    w = encode_tensors([levels], [LaplaceModel(1, 0)])
    assert np.array_equal(decode_tensors(w, [LaplaceModel(1, 0)], [levels.size])[0], levels)
    for R in (0, 1, 65535):
        lv = np.array([fmt.MAX_LEVEL, -fmt.MAX_LEVEL, 0, 5, -5], np.int64)
        m = [LaplaceModel(fmt.MAX_LEVEL, R)]
        assert np.array_equal(decode_tensors(encode_tensors([lv], m), m, [lv.size])[0], lv)


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

    models, words = [LaplaceModel(1, 30000)], np.array([12345], np.uint32)
    monkeypatch.setattr(constriction.stream.stack, "AnsCoder", Boom(PanicException("index out of bounds")))
    with pytest.raises(EntropyError, match=r"corrupted entropy-coded data \(PanicException\)"):
        decode_tensors(words, models, [4])
    monkeypatch.setattr(constriction.stream.stack, "AnsCoder", Boom(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        decode_tensors(words, models, [4])


@pytest.mark.parametrize("words,models,sizes,match", [
    ([], [(0, 0), (0, 0)], [3, 0], None),  # every K = 0: zeros, no words needed
    ([1], [(0, 0)], [3], "every tensor is zero"),
    ([], [(1, 100), (0, 0), (3, 9)], [3, 2, 1], [-1, 0, -3]),  # no words: every level -K
    ([0], [(1, 100)], [3], r"corrupted entropy-coded data \(ValueError\)"),
    ([7, 7, 7, 7], [(1, 100)], [1], "unconsumed"),
    ([5], [(2, 65536)], [1], "entropy model R=65536, K=2 out of range"),
    ([5], [(32768, 5)], [1], "entropy model R=5, K=32768 out of range"),
])
def test_decode_tensors_edge_cases(words, models, sizes, match):
    w = np.array(words, np.uint32)
    ms = [LaplaceModel(k, r) for k, r in models]
    if match is None or isinstance(match, list):  # version 3 streams: no end marker
        out = decode_tensors(w, ms, sizes, marker=False)
        assert [o.shape for o in out] == [(n,) for n in sizes]
        assert all((o == (match[i] if match else 0)).all() for i, o in enumerate(out))
    else:
        with pytest.raises(EntropyError, match=match):
            decode_tensors(w, ms, sizes, marker=False)


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
    # an unknown 16-byte id in a valid stream
    other = _write(tmp_path, serialize(replace(tiny.header, init_digest=b"\xab" * 16), tiny.gops), "o.nerv")
    _rejected(other, "encoded with init abababababababab, which this decoder does not have")


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
        p = _write(tmp_path, serialize(replace(tiny.header, init_digest=digest[:16]), tiny.gops), f"{name}.nerv")
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


# ------------------------------------------------------------------ versions, files and paths

def test_version_1_files_are_refused_by_version(tmp_path, tiny):
    """A nervc 0.1 file (version 1.0) gets one clear message, before anything else of it is read:
    the real v1 file kept in the regression corpus, and the bare 8 bytes that say "version 1"."""
    want = (r"bitstream version 1\.0 \(nervc 0\.1\) is no longer supported: this decoder reads "
            r"versions 2\.x to 4\.x; decode it with nervc 0\.1 or encode the video again")
    v1 = CORPUS / "regress" / "v1_seed_tinyA_1x1_verbatim.nerv"
    assert v1.read_bytes()[:6] == b"NERV\x01\x00"
    for p in (v1, _write(tmp_path, b"NERV\x01\x00\x51\x00", "bare.nerv"),
              _write(tmp_path, fix_crcs(b"NERV\x01" + tiny.data[5:]), "relabelled.nerv")):
        with pytest.raises(BitstreamError, match=want):
            BitstreamReader(p)
        msg = _rejected(p, want)
        assert msg.startswith(f"{p}: ")


@pytest.mark.parametrize("major", [5, 15, 0, 16, 255])
def test_other_versions_ask_for_an_upgrade_only_when_plausible(tmp_path, tiny, major):
    data = bytearray(tiny.data)
    data[4] = major
    p = _write(tmp_path, fix_crcs(bytes(data)))
    if 5 <= major <= 15:
        want = (rf"bitstream version {major}\.0 is not supported \(this decoder reads versions 2\.x to 4\.x\): "
                r"the file is from a newer nervc; upgrade nervc")
    else:
        want = rf"version {major}\.0 after the magic is no version nervc ever wrote \(the file is corrupt\)"
    with pytest.raises(BitstreamError, match=want):
        BitstreamReader(p)
    _rejected(p, want)


@pytest.mark.parametrize("kind", ["missing", "dir", "empty", "short", "text", "fifo", "future", "v1"])
def test_reader_entry_points_only_raise_nervc_errors(tmp_path, tiny, kind):
    p = tmp_path / "x.nerv"
    if kind == "dir":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "short":
        p.write_bytes(b"NERV\x02")
    elif kind == "text":
        p.write_text("hello, I am not a video\n" * 10)
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind in ("future", "v1"):
        data = bytearray(tiny.data)
        data[4] = 5 if kind == "future" else 1
        p.write_bytes(fix_crcs(bytes(data)))
    match = {"missing": "no such file", "dir": "not a file", "empty": "empty file", "fifo": "not a file",
             "short": "not a .nerv file", "text": "not a .nerv file", "future": "version 5.0 is not supported",
             "v1": "no longer supported"}[kind]
    with pytest.raises(BitstreamError, match=match):
        BitstreamReader(p)
    _rejected(p, match)


def test_truncations_at_every_section_boundary_and_inside(tmp_path, tiny):
    data = tiny.data
    cuts = {1, 7, 8, 50, 58, 59, 62, 63, len(data) // 2, len(data) - 1}
    pos = struct.unpack_from("<H", data, 6)[0] + 4
    while pos < len(data):  # every section boundary and a byte either side
        cuts |= {pos - 1, pos, pos + 1, pos + 9}
        pos += 9 + struct.unpack_from("<I", data, pos + 1)[0]
    cuts |= set(range(80, len(data), 97))
    for cut in sorted(c for c in cuts if 0 < c < len(data)):
        p = _write(tmp_path, data[:cut], f"t{cut}.nerv")
        _rejected(p, "truncated|not a .nerv|CRC|header|trailing|cannot fit|missing")


def test_crc_catches_single_bit_flips(tmp_path, tiny):
    """Every bit flip anywhere in the file is refused (header CRC, section CRC, or a field
    check before them), never decoded as something else."""
    data = tiny.data
    rng = np.random.default_rng(3)
    for i, pos in enumerate(sorted({*range(0, 66), *rng.integers(66, len(data), 40).tolist()})):
        b = bytearray(data)
        b[pos] ^= 1 << int(rng.integers(8))
        _rejected(_write(tmp_path, bytes(b), f"f{i}.nerv"), ".")


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
    """A small stream of a ~30M-parameter model (just under MAX_DECODE_PARAMS) is valid: it
    decodes, and the worker's peak RSS stays bounded (measured in a fresh process)."""
    import json
    import math
    import subprocess
    from fractions import Fraction

    from metanerv.model import NeRVConfig
    cfg = NeRVConfig(pe_freqs=4, embed_dim=8, grid_channels=256, grid_anchors=1, channels=(200, 4), strides=(8, 8))
    h = fmt.Header(64, 64, 2, Fraction(25), 2, 1, cfg)
    levels, models = [], []
    for _, shape in fmt.param_shapes(cfg, h.grid_hw):
        lv = np.zeros(math.prod(shape), np.int64)
        lv[0] = 1
        levels.append(lv)
        models.append(LaplaceModel(1, 1))
    g = fmt.GopRecord(0, 2, [fmt.TensorRecord(np.float16(0.01), m.K, m.R) for m in models],
                      encode_tensors(levels, models))
    p = _write(tmp_path, serialize(h, [g]))
    r = subprocess.run([sys.executable, "-m", "tests.fuzz.run", "--replay", str(p)], capture_output=True,
                       text=True, cwd=Path(__file__).resolve().parents[1], timeout=600)
    res = json.loads(r.stdout)
    print(f"{p.stat().st_size} bytes, {sum(math.prod(s) for _, s in fmt.param_shapes(cfg, h.grid_hw))} "
          f"parameters: {res}")
    assert res["outcome"] == "ok" and res["peak_rss_mb"] < 1536
