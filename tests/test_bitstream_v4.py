"""Bitstream version 4: temporal anchors that follow the GOP, sections that know their place,
ANS streams that end with a marker. (Version 2 and 3 files: the conformance streams v2_*, v3_*.)
"""
from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
import torch

from bitstreams import BitstreamReader, refdecoder
from nervcore.errors import NervcError
from codec import encode
from codec.conformance import _edit_sections, _sections
from codec.entropy import EntropyError, LaplaceModel, decode_tensors, encode_tensors, fit_laplace
from codec.ladder import gop_anchors, rung_anchors_per_frame
from metanerv.model import NeRV, NeRVConfig, build_model, frame_times, resample_anchors
from nervcore.video_io import Video

TINY = NeRVConfig(pe_freqs=4, embed_dim=8, grid_channels=4, grid_anchors=4, channels=(6, 4), strides=(2, 2))


@pytest.mark.parametrize("anchors", [7, 10, 16, 31, 121])
def test_resampled_init_draws_the_inits_frames(anchors):
    """Anchors at 1 + m (A0 - 1): every init anchor is kept and the network is the same function."""
    torch.manual_seed(0)
    init = NeRV(TINY, (2, 3)).state_dict()
    a = build_model(TINY, (2, 3), init)
    b = build_model(NeRVConfig(**{**TINY.to_dict(), "grid_anchors": anchors,
                                  "channels": TINY.channels, "strides": TINY.strides}), (2, 3), init)
    assert b.grid.shape[0] == anchors
    t = frame_times(list(range(50)), 50)
    with torch.no_grad():
        assert (a(t) - b(t)).abs().max() < 1e-6
    step = (anchors - 1) // 3
    assert all(torch.equal(b.grid[k * step], a.grid[k]) for k in range(4))


@pytest.mark.parametrize("a0,anchors", [(4, 16), (4, 5), (4, 2), (1, 9), (4, 1), (7, 3)])
def test_anchor_resampling_is_the_same_in_both_decoders(a0, anchors):
    g = torch.randn(a0, 3, 2, 5)
    ours = resample_anchors(g, anchors).numpy()
    ref = refdecoder.resample_anchors(g.numpy(), anchors)
    assert ours.shape == ref.shape == (anchors, 3, 2, 5)
    assert np.array_equal(ours.view(np.uint32), ref.view(np.uint32))


def test_gop_anchors_keep_the_inits_and_fit_the_header():
    for frames in (1, 2, 4, 5, 9, 16, 33, 120, 254, 255, 256, 5000):
        a = gop_anchors(frames, 4, 1.0)  # one per frame
        assert 4 <= a <= 255 and (a - 1) % 3 == 0 and (a >= frames or a >= 253)
        assert gop_anchors(frames, 4, 0.0) == 4
        assert gop_anchors(frames, 4, 0.5) >= min(253, frames / 2) and (gop_anchors(frames, 4, 0.5) - 1) % 3 == 0


def test_encoder_gives_the_top_rungs_more_anchors_and_both_decoders_agree(tmp_path, one_thread):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (14, 24, 40, 3), dtype=np.uint8)
    path, low = tmp_path / "a.nerv", tmp_path / "low.nerv"
    encode(Video(frames, Fraction(25)), path, quality=6, steps=4, gop=12, init="default", progress=False)
    r = BitstreamReader(path)
    assert r.header.config.grid_anchors == gop_anchors(12, 4, rung_anchors_per_frame(6)) == 7
    assert r.version == (4, 0) and [(g.first_frame, g.num_frames) for g in r.sections] == [(0, 12), (12, 2)]
    encode(Video(frames, Fraction(25)), low, quality=3, steps=2, gop=12, init="default", progress=False)
    assert BitstreamReader(low).header.config.grid_anchors == 4  # the low rungs keep the init's
    from codec.decoder import decode
    ours = decode(path, device="cpu").frames
    ref = refdecoder.decode(path)
    assert int(np.abs(ours.astype(int) - ref.astype(int)).max()) <= 1


@pytest.fixture(scope="module")
def three_gops(tmp_path_factory) -> bytes:
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (9, 16, 24, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("v4") / "g.nerv"
    encode(Video(frames, Fraction(25)), path, steps=2, gop=4, init="random", progress=False)
    return path.read_bytes()


def _both_refuse(tmp_path, data: bytes, pattern: str) -> None:
    p = tmp_path / "x.nerv"
    p.write_bytes(data)
    from codec.decoder import decode
    with pytest.raises(NervcError, match=pattern):
        decode(p, device="cpu")
    with pytest.raises(NervcError, match=pattern):
        refdecoder.decode(p)


def test_swapped_gop_sections_are_refused(tmp_path, three_gops):
    _both_refuse(tmp_path, _edit_sections(three_gops, "bad_swapped_gops"), "swapped")


def test_a_section_with_another_frame_range_is_refused(tmp_path, three_gops):
    head, secs = _sections(three_gops)
    payload = bytearray(secs[1][9:])
    struct.pack_into("<I", payload, 4, 3)  # first_frame 4 -> 3
    secs[1] = struct.pack("<BII", 1, len(payload), zlib.crc32(bytes(payload))) + bytes(payload)
    _both_refuse(tmp_path, three_gops[:head] + b"".join(secs), "declares frames 3..6")


def test_a_payload_that_ends_early_is_refused(tmp_path, three_gops):
    _both_refuse(tmp_path, _edit_sections(three_gops, "bad_short_payload"), "ends early or late")


def test_end_marker_catches_cut_and_padded_streams():
    rng = np.random.default_rng(1)
    levels = [rng.integers(-3, 4, 500), np.zeros(20, np.int64), rng.integers(-1, 2, 300)]
    models = [fit_laplace(lv) for lv in levels]
    sizes = [lv.size for lv in levels]
    words = encode_tensors(levels, models)
    back = decode_tensors(words, models, sizes)
    assert all(np.array_equal(a, b) for a, b in zip(back, levels))
    for bad in (words[1:], words[:-1], np.concatenate([words, words[:1]]), np.zeros(0, np.uint32)):
        with pytest.raises(EntropyError):
            decode_tensors(bad.astype(np.uint32), models, sizes)
    # every tensor zero: the stream is the marker alone, one word
    zeros = encode_tensors([np.zeros(5, np.int64)], [LaplaceModel(0, 0)])
    assert len(zeros) == 1 and decode_tensors(zeros, [LaplaceModel(0, 0)], [5])[0].tolist() == [0] * 5
