"""The codec end to end on real clips with a tiny training budget."""
from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest

import codec
from codec.cli import main
from nervcore.video_io import Video, read_video
from tests.conftest import DATA, manifest

FIXTURES = [r for r in manifest() if r["role"] == "fixtures"]
TINY = dict(steps=2, init="random", progress=False, overwrite=True)


@pytest.fixture(scope="module")
def bus() -> Video:
    return read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 10))


@pytest.mark.parametrize("row", FIXTURES, ids=[r["file"] for r in FIXTURES])
def test_every_fixture_encodes_and_decodes(tmp_path, row):
    out = tmp_path / "x.nerv"
    r = codec.encode(DATA / "fixtures" / row["file"], out, **TINY)
    streamed = codec.decode(out, tmp_path / "x.mkv", device="cpu")
    d = codec.decode(out, device="cpu")
    n, w, h = int(row["frames"]), int(row["width"]), int(row["height"])
    assert (r.num_frames, r.width, r.height) == (n, w, h)
    assert streamed.frames is None and (streamed.num_frames, streamed.width, streamed.height) == (n, w, h)
    assert d.frames.shape == (n, h, w, 3)
    back = read_video(tmp_path / "x.mkv")
    assert back.num_frames == n and abs(back.fps / r.fps - 1) < 1e-3  # mkv timestamps are in ms
    assert np.array_equal(back.frames, d.frames)  # FFV1 is lossless
    assert r.num_bytes == out.stat().st_size


def test_same_seed_same_bytes_and_bit_exact_decode(tmp_path, bus):
    a, b = tmp_path / "a.nerv", tmp_path / "b.nerv"
    codec.encode(bus, a, steps=4, init="random", progress=False, seed=3)
    codec.encode(bus, b, steps=4, init="random", progress=False, seed=3)
    assert a.read_bytes() == b.read_bytes()
    f1 = codec.decode(a, device="cpu").frames
    f2 = codec.decode(a, device="cpu").frames
    assert np.array_equal(f1, f2)


def test_training_improves_psnr_and_a_higher_rate_weight_costs_fewer_bytes(tmp_path, bus):
    # batch 8, the encoder's batch before presets, when these margins were set
    short = codec.encode(bus, tmp_path / "s.nerv", steps=2, lam=0.1, init="random", batch=8, progress=False)
    longer = codec.encode(bus, tmp_path / "l.nerv", steps=60, lam=0.1, init="random", batch=8, progress=False)
    assert longer.psnr > short.psnr + 1.0
    fat = codec.encode(bus, tmp_path / "f.nerv", steps=20, lam=0.05, batch=8, progress=False)
    thin = codec.encode(bus, tmp_path / "t.nerv", steps=20, lam=5.0, batch=8, progress=False)
    assert thin.num_bytes < 0.7 * fat.num_bytes


def test_file_size_matches_the_rate_estimate(tmp_path, bus):
    """The entropy models' ideal bits plus the exact overhead predict the written bytes."""
    for lam in (0.05, 2.0):
        r = codec.encode(bus, tmp_path / f"e{lam}.nerv", steps=10, lam=lam, progress=False)
        assert abs(r.num_bytes - r.estimated_bytes) <= max(0.02 * r.num_bytes, 16)


def test_printed_bpp_is_file_size_over_pixels(tmp_path, capsys, bus):
    src = tmp_path / "in.mkv"
    from nervcore.video_io import write_video
    write_video(src, bus.frames, bus.fps, bus.width, bus.height)
    out = tmp_path / "o.nerv"
    assert main(["encode", str(src), str(out), "--steps", "2", "--init", "random", "--quiet"]) == 0
    printed = float(re.search(r"([\d.]+) bpp", capsys.readouterr().out).group(1))
    assert printed == pytest.approx(8 * out.stat().st_size / (176 * 144 * 10), abs=1e-4)


def test_random_access_matches_full_decode(tmp_path, bus):
    out = tmp_path / "g.nerv"
    codec.encode(bus, out, gop=4, **TINY)  # GOPs 0-3, 4-7, 8-9
    full = codec.decode(out, device="cpu").frames
    part = codec.decode(out, frames=slice(3, 9), device="cpu")
    assert np.array_equal(part.frames, full[3:9]) and part.first_frame == 3


def test_odd_size_and_rgb_source(tmp_path, bus):
    odd = Video(np.ascontiguousarray(bus.frames[:3, :37, :51]), Fraction(24000, 1001))
    r = codec.encode(odd, tmp_path / "o.nerv", **TINY)
    d = codec.decode(tmp_path / "o.nerv", tmp_path / "o.mp4", device="cpu")
    assert (d.num_frames, d.height, d.width) == (3, 37, 51) and d.fps == Fraction(24000, 1001)
    assert read_video(tmp_path / "o.mp4").frames.shape == (3, 38, 52, 3)  # padded: 4:2:0 plays anywhere
    assert r.bpp == pytest.approx(8 * r.num_bytes / (37 * 51 * 3))


def test_raw_yuv_with_explicit_size(tmp_path):
    r = codec.encode(DATA / "fixtures" / "foreman_cif_2f.yuv", tmp_path / "y.nerv", size=(352, 288),
                     fps=Fraction(30), **TINY)
    assert (r.width, r.height, r.num_frames, r.fps) == (352, 288, 2, Fraction(30))


def test_info_lists_every_section(tmp_path, capsys, bus):
    out = tmp_path / "i.nerv"
    codec.encode(bus, out, gop=5, **TINY)
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "GOP 0" in text and "GOP 1" in text and "head.weight" in text


def test_ladder_orders_rates(tmp_path, bus):
    # 10 steps of 2 frames over 10 frames: q8 is raised to the budget's floor, still under q3's lam
    outs = {q: tmp_path / f"q{q}.nerv" for q in (1, 3, 8)}
    res = codec.encode_ladder(bus, outs, steps=10, progress=False)
    sizes = [res[q].num_bytes for q in (1, 3, 8)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert all(res[q].num_bytes == outs[q].stat().st_size for q in outs)


def test_a_short_ladder_fits_each_rung_as_encode_does(tmp_path, bus):
    """Below MIN_SHARED_DECAY_STEPS of decay a ladder's rungs are the bytes of single encodes."""
    from codec.gopfit import MIN_SHARED_DECAY_STEPS
    steps = 12
    assert steps * 0.4 < MIN_SHARED_DECAY_STEPS
    res = codec.encode_ladder(bus, {2: tmp_path / "l2.nerv", 6: tmp_path / "l6.nerv"}, steps=steps, progress=False)
    for q in (2, 6):
        codec.encode(bus, tmp_path / f"s{q}.nerv", quality=q, steps=steps, progress=False)
        assert (tmp_path / f"l{q}.nerv").read_bytes() == (tmp_path / f"s{q}.nerv").read_bytes()
    assert res[2].num_bytes < res[6].num_bytes


def test_a_long_ladder_shares_the_stable_phase(tmp_path, bus, monkeypatch):
    """At or above the threshold the rungs branch off one fit: a low rung then differs from its
    single encode (it started its decay from the lowest lam's stable state)."""
    import codec.gopfit as enc
    monkeypatch.setattr(enc, "MIN_SHARED_DECAY_STEPS", 4)
    codec.encode_ladder(bus, {2: tmp_path / "l2.nerv", 4: tmp_path / "l4.nerv"}, steps=12, progress=False)
    codec.encode(bus, tmp_path / "s2.nerv", quality=2, steps=12, progress=False)
    assert (tmp_path / "l2.nerv").read_bytes() != (tmp_path / "s2.nerv").read_bytes()


def test_random_init_encodes_the_shipped_model_shape(tmp_path):
    """--init random changes where the weights start, not the model: same shape as the default."""
    from bitstreams import BitstreamReader
    from metanerv.init_file import DEFAULT_INIT, load_init
    from metanerv.model import NeRVConfig

    clip = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 2))
    out = tmp_path / "r.nerv"
    codec.encode(clip, out, init="random", steps=1, batch=2, progress=False)
    header = BitstreamReader(out).header
    shipped = load_init(DEFAULT_INIT).config
    assert not header.has_init and header.config == shipped
    assert shipped != NeRVConfig()  # the shipped init is the c8 class, not the dataclass default
