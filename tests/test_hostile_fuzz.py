"""A short, deterministic run of the fuzzer (tests/fuzz, see its README for the long run), plus
property tests of the entropy decoder and the container parser on arbitrary bytes.

The only acceptable outcomes are a correct decode or a NervcError with a readable one-line
message; crashes, hangs (per-case timeout) and memory blow-ups fail the test.
"""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstreams.format import BitstreamError, _Cursor, decode_header
from codec.entropy import EntropyError, decode_levels, encode_levels
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


@HYP
@given(st.lists(st.integers(0, 40), min_size=1, max_size=12), st.binary(max_size=64), st.integers(-5, 5))
def test_decode_levels_on_arbitrary_words(counts, raw, lo):
    counts = np.array(counts, np.uint32)
    n = int(counts.sum())
    words = np.frombuffer(raw[: len(raw) // 4 * 4], "<u4").astype(np.uint32)
    try:
        levels = decode_levels(lo, counts, words, n)
    except EntropyError as e:
        assert message_problem(str(e)) is None
        return
    assert levels.shape == (n,)
    assert np.array_equal(np.bincount(levels - lo, minlength=len(counts)), counts)


@HYP
@given(st.lists(st.integers(-511, 511), min_size=1, max_size=300))
def test_entropy_round_trip(values):
    x = np.array(values, np.int64)
    lo, counts, words = encode_levels(x)
    assert np.array_equal(decode_levels(lo, counts, words, x.size), x)


@HYP
@given(st.binary(max_size=200))
def test_header_parser_on_arbitrary_bytes(data):
    for blob in (data, b"NERV\x01\x00" + data):
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
        assert expect["outcome"] == "rejected", str(e)
        assert expect["match"] in str(e) and message_problem(str(e)) is None, str(e)
