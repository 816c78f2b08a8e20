"""Every fixture clip reads with the size, frame count and frame rate MANIFEST.tsv states."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from nervcore.errors import NervcError
from nervcore.video_io import parse_fps, parse_frame_range, read_video, write_video
from tests.conftest import DATA, manifest

FIXTURES = [r for r in manifest() if r["role"] == "fixtures"]


@pytest.mark.parametrize("row", FIXTURES, ids=[r["file"] for r in FIXTURES])
def test_fixture_reads_as_manifest_says(row):
    v = read_video(DATA / "fixtures" / row["file"])
    assert (v.width, v.height) == (int(row["width"]), int(row["height"]))
    assert v.num_frames == int(row["frames"])
    assert abs(float(v.fps) - float(row["fps"])) < 0.05 or row["format"].startswith("raw")
    assert v.frames.dtype == np.uint8 and v.frames.shape[-1] == 3


def test_frame_range_reads_only_the_selection():
    full = read_video(DATA / "fixtures" / "bus_qcif_30f.264")
    part = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(5, 9))
    assert np.array_equal(part.frames, full.frames[5:9])


def test_ntsc_rate_stays_rational():
    v = read_video(DATA / "bench" / "carphone_qcif_120f.mp4", frames=slice(0, 2))
    assert v.fps == Fraction(30000, 1001)


def test_png_folder_and_full_range_sources():
    png = read_video(DATA / "bench" / "BasketballPass_416x240_png", frames=slice(0, 3))
    assert png.frames.shape == (3, 240, 416, 3)
    jpeg_range = read_video(DATA / "train" / "street_1080p.264", frames=slice(0, 1))
    assert jpeg_range.frames.shape == (1, 1080, 1920, 3)


@pytest.mark.parametrize("name", ["out.mkv", "out.y4m", "out.mp4", "pngs"])
def test_writers_round_trip(tmp_path, name):
    src = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 4))
    frames = src.frames[:, :143, :175]  # odd size on purpose
    write_video(tmp_path / name, frames, src.fps, 175, 143)
    back = read_video(tmp_path / name, fps=src.fps)
    if name == "out.mp4":  # padded to 176x144 (4:2:0, what players play): the edge repeated
        assert back.frames.shape == (4, 144, 176, 3)
        assert np.abs(back.frames[:, 143].astype(int) - back.frames[:, 142]).mean() < 3
        back.frames = back.frames[:, :143, :175]
    assert back.frames.shape == frames.shape
    err = np.abs(back.frames.astype(int) - frames).mean()
    assert err == 0 if name in ("out.mkv", "pngs") else err < 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp file left behind"


def test_parsers_reject_nonsense():
    with pytest.raises(NervcError):
        parse_frame_range("9:3")
    with pytest.raises(NervcError):
        parse_fps("-1")
    assert parse_frame_range("4") == slice(4, 5)
    assert parse_fps("30000/1001") == Fraction(30000, 1001)
