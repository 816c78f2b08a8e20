"""Shared fixtures: where the real video lives and small encodes reused across tests."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(2)


def bus_corner(frames: int):
    """The first ``frames`` frames of the bus fixture cut to 48x32: encodes of a second or two."""
    import numpy as np

    from nervcore.video_io import Video, read_video
    v = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, frames))
    return Video(np.ascontiguousarray(v.frames[:, :32, :48]), v.fps)


def manifest() -> list[dict]:
    with open(DATA / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture
def one_thread():
    """Tiny models: one thread is faster, and a busy machine makes more threads far slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def link_fixture_clips(folder: Path, names: tuple[str, ...]) -> Path:
    """A folder of symlinks to fixture clips: a small video folder without copying data."""
    for name in names:
        (folder / name).symlink_to(DATA / "fixtures" / name)
    return folder


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"test data missing: {DATA} (see DEVELOPERS.md)"
    return DATA
