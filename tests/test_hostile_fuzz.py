"""A short, deterministic run of the fuzzer (tests/fuzz, see its README for the long run), plus
property tests of the entropy decoder and the container parser (bitstream version 2) on
arbitrary bytes, and the regression corpus.

The only acceptable outcomes are a correct decode or a NervcError with a readable one-line
message; crashes, hangs (per-case timeout) and memory blow-ups fail the test.
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstreams import format as fmt
from bitstreams.format import BitstreamError, BitstreamReader, _Cursor, decode_header
from codec.entropy import (
    EntropyError, LaplaceModel, decode_tensors, encode_tensors, fit_laplace, laplace_counts,
)
from metanerv.model import NeRVConfig
from nervcore.errors import NervcError
from tests.fuzz.harness import message_problem
from tests.fuzz.mutate import CORPUS
from tests.fuzz.run import FAILURES, run

HYP = settings(max_examples=150, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


def test_short_fuzz_run_has_no_failures(tmp_path):
    s = run(150, seed=20240601, workers=1, timeout=60, rss_limit_mb=2048, crash_dir=tmp_path / "crashes")
    print(json.dumps({k: s[k] for k in ("seconds", "outcomes", "by_strategy", "peak_rss_mb",
                                         "slowest_rejected")}, indent=1))
    failed = {k: s["outcomes"].get(k, 0) for k in FAILURES if s["outcomes"].get(k)}
    assert not failed and not s["generator_errors"], json.dumps(s["distinct_failures"], indent=1)[:4000]
    assert s["outcomes"].get("rejected", 0) > 60 and s["outcomes"].get("ok", 0) > 5
    assert len(s["by_strategy"]) >= 6


# ------------------------------------------------------------------ entropy coding

models_st = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 65535), st.integers(0, 12)),
                     min_size=1, max_size=5)


@HYP
@given(models_st, st.binary(max_size=64))
def test_decode_tensors_on_arbitrary_words(spec, raw):
    """Any words against any models: an EntropyError with a clean message, or levels of the
    right sizes inside [-K, K] (zeros where K = 0)."""
    models = [LaplaceModel(k, r) for k, r, _ in spec]
    sizes = [n for _, _, n in spec]
    words = np.frombuffer(raw[: len(raw) // 4 * 4], "<u4").astype(np.uint32)
    try:
        out = decode_tensors(words, models, sizes)
    except EntropyError as e:
        assert message_problem(str(e)) is None
        return
    assert [o.shape for o in out] == [(n,) for n in sizes]
    for o, m in zip(out, models):
        assert o.dtype == np.int64 and (np.abs(o) <= m.K).all()


@settings(HYP, max_examples=80)
@given(st.lists(st.lists(st.integers(-60, 60), max_size=60), min_size=1, max_size=4), st.data())
def test_entropy_round_trip(tensors, data):
    """Levels -> fit_laplace -> one ANS stream -> the same levels, K = 0 tensors included."""
    levels = [np.array(t, np.int64) for t in tensors]
    if data.draw(st.booleans()):
        levels.append(np.zeros(data.draw(st.integers(0, 9)), np.int64))
    models = [fit_laplace(lv) for lv in levels]
    assert all(m.K == (int(np.abs(lv).max()) if lv.size else 0) for m, lv in zip(models, levels))
    sizes = [lv.size for lv in levels]
    words = encode_tensors(levels, models, marker=False)  # version 3
    # no words iff every coded level is -K (symbol 0 leaves the coder's state at 0), which
    # includes every K = 0 (corpus/regress/no_words_all_levels_minus_K.nerv)
    assert (len(words) == 0) == all((lv == -m.K).all() for lv, m in zip(levels, models) if m.K)
    out = decode_tensors(words, models, sizes, marker=False)
    assert all(np.array_equal(a, b) for a, b in zip(out, levels))
    words = encode_tensors(levels, models)  # version 4: never empty, ends with the marker
    assert len(words) >= 1
    assert all(np.array_equal(a, b) for a, b in zip(decode_tensors(words, models, sizes), levels))


@HYP
@given(st.integers(0, 65535), st.integers(0, 300))
def test_laplace_counts_properties(R, K):
    """SPEC.md "Frequency table": 2K+1 symmetric counts, all >= 1, never increasing with |k|,
    summing to less than 2**33 (exact in float64, as the decoder divides them)."""
    c = laplace_counts(R, K).astype(np.int64)
    assert c.shape == (2 * K + 1,) and (c >= 1).all()
    assert np.array_equal(c, c[::-1])
    half = c[K:]
    assert (np.diff(half[1:]) <= 0).all()
    assert int(c.sum()) < 1 << 33


# ------------------------------------------------------------------ container parser

@HYP
@given(st.binary(max_size=200))
def test_header_parser_on_arbitrary_bytes(data):
    for blob in (data, b"NERV\x02\x00" + data, b"NERV\x02\x00\x3e\x00" + data, b"NERV\x01\x00" + data):
        b = bytearray(blob)
        if len(b) >= 8:  # give the CRC a chance to match so the field checks run
            (hlen,) = struct.unpack_from("<H", b, 6)
            if hlen + 4 <= len(b):
                struct.pack_into("<I", b, hlen, zlib.crc32(bytes(b[:hlen])))
        try:
            decode_header(bytes(b))
        except BitstreamError as e:
            assert message_problem(str(e)) is None


@HYP
@given(st.binary(max_size=12))
def test_varints_are_bounded(data):
    try:
        v = _Cursor(data, "t").varint()
    except BitstreamError:
        return
    assert 0 <= v < 1 << 32


_CFG = NeRVConfig(pe_freqs=1, pe_base=1.0, embed_dim=1, grid_channels=1, grid_anchors=1,
                  channels=(1,), strides=(1,))


@pytest.fixture(scope="module")
def small_reader(tmp_path_factory):
    """Readers of a valid 1x1 stream of the smallest model (11 tensors), version 3 and 4, to
    parse payloads with."""
    from codec.entropy import END_MARKER_WORDS
    out = {}
    for version, words in ((3, np.zeros(0, np.uint32)), (4, END_MARKER_WORDS)):
        p = tmp_path_factory.mktemp("gop") / f"p{version}.nerv"
        h = fmt.Header(1, 1, 1, Fraction(25), 1, 1, _CFG, version=version)
        fmt.write_bitstream(p, h, [fmt.GopRecord(0, 1, [fmt.TensorRecord(np.float16(0), 0, 0)] * 11, words)])
        out[version] = BitstreamReader(p)
    return out


@HYP
@given(st.binary(min_size=37, max_size=160), st.sampled_from([3, 4]), st.booleans())
def test_gop_parser_on_arbitrary_payloads(small_reader, payload, version, own_identity):
    """Any payload of a GOP section (past its CRC): a BitstreamError, or records that satisfy
    every limit of SPEC.md (finite steps >= 0, K <= 32767, R only when K > 0, word counts;
    version 4: the section's own index and frame range)."""
    r = small_reader[version]
    if version == 4 and own_identity:  # reach the records past a correct identity, half the time
        payload = struct.pack("<III", 0, 0, 1) + payload
    try:
        g = r._parse_gop(payload, 0)
    except BitstreamError as e:
        assert message_problem(str(e)) is None
        return
    assert len(g.tensors) == len(r.shapes)
    coded = 0
    for t, (_, shape) in zip(g.tensors, r.shapes):
        assert math.isfinite(float(t.step)) and float(t.step) >= 0
        assert 0 <= t.K <= fmt.MAX_LEVEL and (t.K > 0 or t.R == 0)
        coded += math.prod(shape) if t.K else 0
    if version == 4:
        assert 1 <= len(g.words) <= fmt.max_words(coded, marker=True)
    else:
        assert (coded > 0 or len(g.words) == 0) and len(g.words) <= fmt.max_words(coded)


# ------------------------------------------------------------------ regression corpus

@pytest.mark.parametrize("path", sorted(CORPUS.glob("regress/*.nerv")), ids=lambda p: p.name)
def test_regression_corpus(path, monkeypatch):
    """Inputs that once failed (and those that guard a fix): they must now be rejected cleanly
    or decode, as recorded next to them. The decode memory budget is pinned so the outcome does
    not depend on the machine's RAM."""
    import codec
    monkeypatch.setenv("NERVC_DECODE_MEMORY", "8G")
    expect = json.loads(path.with_suffix(".json").read_text())
    inits = [str(p) for p in sorted(CORPUS.glob("init_*.safetensors"))]
    try:
        r = codec.decode(path, None, device="cpu", init=inits)
        assert expect["outcome"] == "ok", f"decoded, expected {expect}"
        assert r.frames.dtype == np.uint8
    except NervcError as e:
        assert expect["outcome"] == "rejected", f"{e} ({expect.get('note') or 'expected ' + expect['outcome']})"
        assert expect["match"] in str(e) and message_problem(str(e)) is None, str(e)
