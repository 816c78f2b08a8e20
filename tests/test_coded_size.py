"""Coded size (bitstream 3.0, ``--scale``): the networks draw smaller frames that the decoder
resizes to the video's size, and ``--scale auto`` picks the reduction from the preset's budget."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bitstreams import BitstreamReader, refdecoder
from codec import decode, encode
from codec.cli import main
from codec.metrics import frame_mse, psnr_of_mse
from codec.encoder import encode_ladder
from codec.ladder import QUALITY_LEVELS
from codec.presets import (AUTO_MAX_SCALE, AUTO_MIN_SIDE, AUTO_VISITS, PRESET_NAMES, auto_coded_size, auto_visits,
                           coded_size, schedule)
from nervcore.errors import NervcError
from nervcore.video_io import Video, read_video
from tests.conftest import DATA


def _clip(frames: int = 3, h: int = 37, w: int = 45) -> Video:
    v = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, frames))
    return Video(np.ascontiguousarray(v.frames[:, 20:20 + h, 30:30 + w]), v.fps)


def test_scale_2_codes_half_size_and_decodes_to_the_source_size(tmp_path, one_thread):
    clip = _clip()
    out = tmp_path / "s2.nerv"
    r = encode(clip, out, quality=4, steps=12, scale=2, progress=False)
    h = BitstreamReader(out).header
    assert (h.width, h.height, h.coded_width, h.coded_height) == (45, 37, 23, 19)
    assert (r.coded_width, r.coded_height) == (23, 19) and r.bpp == 8 * r.num_bytes / (45 * 37 * 3)
    assert h.grid_hw == (2, 2)  # the grid follows the coded size, not the output size
    frames = decode(out, device="cpu").frames
    assert frames.shape == (3, 37, 45, 3)
    # the PSNR the encoder reports is that of what the decoder writes, at the source's size
    assert psnr_of_mse(frame_mse(frames, clip.frames)) == pytest.approx(r.psnr, abs=1e-9)
    # the reference decoder (SPEC.md "Output size") agrees within the conformance tolerance
    ref = refdecoder.decode(out)
    assert int(np.abs(ref.astype(int) - frames.astype(int)).max()) <= 2


def test_a_smaller_coded_size_writes_fewer_weights(tmp_path, one_thread):
    """The grid is most of a small model's weights: at scale 4 it has a sixteenth of them."""
    clip = _clip(2, 128, 128)
    sizes = {}
    for s in (1, 4):
        encode(clip, tmp_path / f"s{s}.nerv", quality=8, steps=4, scale=s, progress=False, lam=0.0)
        r = BitstreamReader(tmp_path / f"s{s}.nerv")
        sizes[s] = math.prod(dict(r.shapes)["grid"])
    assert sizes[1] == 16 * sizes[4]


def test_coded_size_rounds_up_and_validates():
    assert coded_size(45, 37, 2) == (23, 19)
    assert coded_size(1280, 720, 4) == (320, 180)
    assert coded_size(1, 1, 8) == (1, 1)
    for bad in (0, 9, 2.0, True, "2"):
        with pytest.raises(NervcError, match="--scale"):
            coded_size(64, 64, bad)


@pytest.mark.parametrize("arg", ["0", "9", "two", "1.5"])
def test_cli_rejects_a_bad_scale(tmp_path, capsys, arg):
    assert main(["encode", str(DATA / "fixtures" / "bus_qcif_30f.264"), str(tmp_path / "x.nerv"),
                 "--scale", arg]) == 1
    err = capsys.readouterr().err
    assert "--scale" in err and "expected auto or an integer 1..8" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.nerv").exists()


def test_schedule_spends_the_output_budget_on_coded_pixels():
    full = schedule("medium", 1280, 720, 16)
    half = schedule("medium", 1280, 720, 16, coded_hw=(360, 640))
    assert half.megapixels == full.megapixels  # the budget counts the video's pixels
    assert half.fit_seconds <= full.fit_seconds * 1.01
    assert half.visits_per_frame >= 3.5 * full.visits_per_frame  # a step costs ~4x less


def _visits(preset: str, w: int, h: int, frames: int, coded: tuple[int, int]) -> float:
    return schedule(preset, w, h, frames, coded_hw=(coded[1], coded[0])).visits_per_frame


@pytest.mark.parametrize("w,h", [(176, 144), (352, 288), (640, 360), (832, 480), (1280, 720), (1920, 1080)])
def test_auto_coded_size_follows_the_budget(w, h):
    sizes = [auto_coded_size(p, w, h, 120) for p in PRESET_NAMES]
    visits = [_visits(p, w, h, 120, c) for p, c in zip(PRESET_NAMES, sizes)]
    # a slower preset never codes fewer pixels, nor gives a frame fewer visits (within the 10 %
    # the bisection leaves above the target), than a faster one
    assert [c[0] * c[1] for c in sizes] == sorted(c[0] * c[1] for c in sizes), sizes
    assert all(b >= 0.9 * a for a, b in zip(visits, visits[1:])), visits
    assert sizes[-1] == (w, h)  # veryslow has the visits at the source size
    for p, (cw, ch), v in zip(PRESET_NAMES, sizes, visits):
        assert cw <= w and ch <= h and abs(cw / ch - w / h) < 0.02 * w / h + 1.0 / ch
        if (cw, ch) != (w, h):  # reduced: to the target, or as far as the limits allow
            at_limit = min(cw, ch) <= AUTO_MIN_SIDE + 1 or w / cw >= AUTO_MAX_SCALE - 0.01
            assert v >= AUTO_VISITS or at_limit, (p, cw, ch, v)
            assert _visits(p, w, h, 120, (w, h)) < AUTO_VISITS  # the source size had too few


def test_auto_reduces_hd_at_the_default_preset_and_keeps_small_or_given_steps():
    cw, ch = auto_coded_size("medium", 1280, 720, 120)
    assert 1.5 <= 1280 / cw <= 4 and _visits("medium", 1280, 720, 120, (cw, ch)) >= AUTO_VISITS
    assert auto_coded_size("medium", 160, 90, 120) == (160, 90)  # at the minimum side already
    assert auto_coded_size("medium", 1280, 720, 120, given={"steps": 100}) == (1280, 720)


def test_auto_coded_size_is_what_the_encoder_writes(tmp_path, one_thread):
    """A 2-frame CIF encode at ultrafast: auto reduces it, and the header says how far."""
    v = read_video(DATA / "fixtures" / "foreman_cif_2f.yuv")
    want = auto_coded_size("ultrafast", v.width, v.height, v.num_frames, visits=auto_visits(2))
    assert want[0] < v.width
    r = encode(v, tmp_path / "a.nerv", quality=2, preset="ultrafast", progress=False)
    h = BitstreamReader(tmp_path / "a.nerv").header
    assert (h.coded_width, h.coded_height) == want == (r.coded_width, r.coded_height)
    assert decode(tmp_path / "a.nerv", device="cpu").frames.shape == v.frames.shape


def test_bpp_target_counts_the_videos_pixels_not_the_coded_ones(tmp_path, one_thread):
    """--bpp at a coded size a quarter of the video's: the rate lands near the target in bits
    per *video* pixel (a per-coded-pixel target would land near a quarter of it)."""
    r = encode(_clip(4, 64, 96), tmp_path / "b.nerv", bpp=1.0, steps=40, scale=2, progress=False)
    assert (r.coded_width, r.coded_height) == (48, 32)
    assert 0.7 <= r.bpp <= 1.1, r.bpp


@pytest.mark.parametrize("src,dst", [((131, 160), (288, 352)), ((19, 23), (37, 45)), ((3, 5), (24, 40)),
                                     ((90, 110), (90, 176)), ((1, 1), (7, 3))])
def test_upscale_is_pytorchs_bicubic_and_the_reference_decoders(src, dst):
    """The decoder's two matrix products are SPEC.md's resize: PyTorch's bicubic
    (align_corners=False, a = -0.75) and the reference decoder's float64 passes, to float32
    rounding."""
    import torch
    import torch.nn.functional as F

    from metanerv.model import upscale_frames
    x = torch.rand(2, 3, *src, generator=torch.Generator().manual_seed(0))
    got = upscale_frames(x, *dst)
    want = F.interpolate(x, size=dst, mode="bicubic", align_corners=False).clamp(0, 1)
    assert got.shape == (2, 3, *dst) and float((got - want).abs().max()) < 1e-5
    ref = refdecoder.resize_bicubic(x.permute(0, 2, 3, 1).numpy(), *dst)
    assert float(np.abs(got.permute(0, 2, 3, 1).numpy() - ref).max()) < 1e-5


@pytest.mark.parametrize("src,dst", [((144, 176), (90, 110)), ((288, 352), (131, 160)), ((37, 45), (19, 23))])
def test_prefilter_is_the_coded_frame_whose_resize_is_closest_to_the_source(src, dst):
    """What the encoder fits at a smaller coded size: resizing it back (the decoder's resize)
    lands closer to the source than the area average does, and no nudge of it lands closer
    still (least squares; the source is kept inside (0, 1) so the clamp does not bind)."""
    import torch

    from metanerv.model import downscale_frames, prefilter_frames, upscale_frames
    g = torch.Generator().manual_seed(1)
    x = 0.25 + 0.5 * torch.rand(1, 3, *src, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)  # some smoothness
    y = prefilter_frames(x, *dst)
    assert y.shape == (1, 3, *dst) and float(y.min()) >= 0 and float(y.max()) <= 1

    def err(c: torch.Tensor) -> float:
        return float((upscale_frames(c.clone(), *src) - x).square().sum())
    best = err(y)
    assert best < 0.8 * err(downscale_frames(x, *dst))
    for _ in range(5):
        assert err(y + 1e-3 * torch.randn(y.shape, generator=g)) > best


def test_the_encoder_fits_halfway_between_the_area_average_and_the_prefilter(monkeypatch):
    import torch

    import codec.gopfit as enc
    from metanerv.model import downscale_frames, prefilter_frames
    x = torch.rand(2, 3, 36, 44, generator=torch.Generator().manual_seed(2))
    area, pre = downscale_frames(x, 18, 22), prefilter_frames(x, 18, 22)
    assert torch.allclose(enc.coded_target(x, 18, 22), 0.5 * (area + pre), atol=1e-6)
    assert enc.coded_target(x, 36, 44) is x  # the source's own size: the source
    monkeypatch.setattr(enc, "PREFILTER_SHARE", 0.0)
    assert torch.equal(enc.coded_target(x, 18, 22), area)


def test_info_names_the_version_and_the_coded_size(tmp_path, capsys, one_thread):
    out = tmp_path / "i.nerv"
    encode(_clip(2), out, steps=2, scale=2, progress=False)
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nervc bitstream 4.0" in text and "coded     23x19, resized to 45x37 on decode" in text
    from pathlib import Path
    v2 = Path(__file__).resolve().parents[1] / "bitstreams" / "conformance" / "v2_delta_q6.nerv"
    assert main(["info", str(v2)]) == 0
    text = capsys.readouterr().out
    assert "nervc bitstream 2.0" in text and "coded " not in text


@pytest.mark.parametrize("w,h", [(176, 144), (352, 288), (416, 240), (832, 480), (1280, 720)])
def test_lower_rungs_code_no_more_pixels_than_higher_ones(w, h):
    """A rung's visit target falls as -q rises, so its coded size never shrinks: the low rungs
    spend the budget on visits, the top ones on pixels (benchmarks/results/auto-visits/)."""
    targets = [auto_visits(q) for q in QUALITY_LEVELS]
    assert targets == sorted(targets, reverse=True) and auto_visits(max(QUALITY_LEVELS)) == AUTO_VISITS
    for p in PRESET_NAMES:
        px = [math.prod(auto_coded_size(p, w, h, 120, visits=auto_visits(q))) for q in QUALITY_LEVELS]
        assert px == sorted(px), (p, px)
    low, top = (auto_coded_size("medium", w, h, 120, visits=auto_visits(q)) for q in (5, 8))
    assert low[0] < top[0] or min(low) <= AUTO_MIN_SIDE + 1  # reduced further, or at the floor


def test_a_ladder_fits_each_rung_at_its_own_coded_size(tmp_path, one_thread):
    """-q 5 and -q 7 of one encode_ladder call land on different coded sizes, and each file is
    the same bytes as that rung encoded alone (a group per size, nothing shared across)."""
    v = read_video(DATA / "fixtures" / "desk_320x240_36f.mp4", frames=slice(0, 4))
    sizes = {q: auto_coded_size("medium", 320, 240, 4, visits=auto_visits(q)) for q in (5, 7)}
    assert sizes[5] != sizes[7]
    both = encode_ladder(v, {q: tmp_path / f"both{q}.nerv" for q in (5, 7)}, progress=False)
    for q in (5, 7):
        h = BitstreamReader(tmp_path / f"both{q}.nerv").header
        assert (h.coded_width, h.coded_height) == sizes[q] == (both[q].coded_width, both[q].coded_height)
        alone = encode(v, tmp_path / f"alone{q}.nerv", quality=q, progress=False)
        assert (tmp_path / f"alone{q}.nerv").read_bytes() == (tmp_path / f"both{q}.nerv").read_bytes()
        assert alone.psnr == both[q].psnr
    assert both[7].psnr > both[5].psnr


def test_a_split_ladder_checks_every_output_before_writing_any(tmp_path):
    v = read_video(DATA / "fixtures" / "desk_320x240_36f.mp4", frames=slice(0, 2))
    assert auto_coded_size("medium", 320, 240, 2, visits=auto_visits(5)) != \
        auto_coded_size("medium", 320, 240, 2, visits=auto_visits(7))  # two groups
    (tmp_path / "q7.nerv").write_bytes(b"keep")
    with pytest.raises(NervcError, match="already exists"):
        encode_ladder(v, {5: tmp_path / "q5.nerv", 7: tmp_path / "q7.nerv"}, progress=False)
    assert not (tmp_path / "q5.nerv").exists() and (tmp_path / "q7.nerv").read_bytes() == b"keep"


def test_bpp_keeps_the_coded_size_of_its_rung(tmp_path, one_thread):
    """--bpp replaces -q's rate weight, not its coded size: -q 7 --bpp codes -q 7's larger size."""
    v = read_video(DATA / "fixtures" / "desk_320x240_36f.mp4", frames=slice(0, 2))
    for q in (5, 7):
        r = encode(v, tmp_path / f"b{q}.nerv", quality=q, bpp=0.5, progress=False)
        want = auto_coded_size("medium", 320, 240, 2, visits=auto_visits(q))
        assert (r.coded_width, r.coded_height) == want
    assert (r.coded_width, r.coded_height) != auto_coded_size("medium", 320, 240, 2, visits=auto_visits(5))
