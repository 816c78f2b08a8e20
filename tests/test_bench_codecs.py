"""The baseline codec wrappers: round trips, raw streams, silenced logs, versions."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from benchmarks import codecs
from benchmarks.colour import rgb_to_yuv420
from benchmarks.metrics import psnr
from benchmarks.protocol import quick_clips


@pytest.fixture(scope="module")
def clip():
    return quick_clips()[0].load()


@pytest.mark.parametrize("name", sorted(codecs.TRADITIONAL))
def test_round_trip(name, clip, capfd):
    c = codecs.make(name, codecs.ladder(name)[1])
    data = c.encode(clip.frames, clip.fps)
    planes = c.decode_yuv(data)
    rgb = c.decode(data)
    assert rgb.shape == clip.frames.shape and rgb.dtype == np.uint8
    assert planes[0].shape == clip.frames.shape[:3]
    assert psnr(rgb_to_yuv420(clip.frames)[0], planes[0]) > 30
    assert psnr(clip.frames, rgb) > 25
    out, err = capfd.readouterr()
    assert err.strip() == "" and out.strip() == "", "encoder chatter leaked to the console"


def test_x264_banner_sei_is_stripped_and_stream_still_decodes(clip):
    c = codecs.make("x264", "crf27")
    data = c.encode(clip.frames, clip.fps)
    assert b"x264" not in data and 400 < c.stripped_bytes < 2000
    assert c.decode(data).shape == clip.frames.shape


def test_raw_streams_have_no_container():
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    assert codecs.make("x264", "crf30").encode(frames, Fraction(25))[:4] == b"\x00\x00\x00\x01"
    assert codecs.make("x265", "crf30").encode(frames, Fraction(25))[:4] == b"\x00\x00\x00\x01"
    av1 = codecs.make("svtav1", "crf40").encode(frames, Fraction(25))
    assert av1[:2] == b"\x12\x00"  # temporal delimiter OBU, not an IVF "DKIF" header


def test_split_annexb_handles_3_and_4_byte_start_codes():
    data = b"\x00\x00\x00\x01\x67\xAA\x00\x00\x01\x68\xBB\x00\x00\x00\x01\x65\xCC\xDD"
    spans = codecs.split_annexb(data)
    assert [data[s:e] for s, e in spans] == [b"\x67\xAA", b"\x68\xBB", b"\x65\xCC\xDD"]


def test_strip_keeps_everything_but_the_banner():
    sei = b"\x06\x05\x10" + bytes(16) + b"x264 - core 999 - H.264/MPEG-4 AVC codec\x00\x80"
    data = b"\x00\x00\x00\x01\x67\xAA" + b"\x00\x00\x01" + sei + b"\x00\x00\x00\x01\x65\xCC"
    out, banner = codecs.strip_h264_info_sei(data)
    assert out == b"\x00\x00\x00\x01\x67\xAA\x00\x00\x00\x01\x65\xCC"
    assert banner.startswith("x264 - core 999")


@pytest.mark.parametrize("name", sorted(codecs.TRADITIONAL))
def test_versions_name_the_build(name):
    v = codecs.version(name)
    assert "unknown" not in v and any(ch.isdigit() for ch in v)


def test_ladders_have_at_least_four_points():
    for name in codecs.TRADITIONAL:
        assert len(codecs.ladder(name)) >= 4
    with pytest.raises(KeyError):
        codecs.ladder("vp9")
