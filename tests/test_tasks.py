"""Task sampler: shapes, resolutions, times, determinism and the bounded frame cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nervcore.errors import NervcError
from metanerv.tasks import FrameCache, TaskSampler, list_videos

from tests.conftest import link_fixture_clips

CLIPS = ("bus_qcif_30f.264", "desk_320x240_36f.mp4")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    d = link_fixture_clips(tmp_path_factory.mktemp("clips"), CLIPS)
    (d / "notes.txt").write_text("not a video")
    return d


@pytest.fixture(scope="module")
def sampler(clip_dir) -> TaskSampler:
    return TaskSampler(clip_dir, sides=(32, 48, 64), cache_mb=64, short_side=96, max_frames=12)


def test_list_videos(clip_dir, tmp_path):
    assert [p.name for p in list_videos(clip_dir)] == sorted(CLIPS)
    with pytest.raises(NervcError):
        list_videos(tmp_path)


def test_tasks_are_small_strided_and_varied(sampler):
    shapes, sources = set(), set()
    for i in range(40):
        task = sampler.sample(np.random.default_rng(i), 5)
        n, c, h, w = task.frames.shape
        assert c == 3 and h % 16 == 0 and w % 16 == 0
        assert h in (32, 48, 64) and w in (32, 48, 64) and max(h, w) / min(h, w) <= 2
        assert n == 5 and task.frames.dtype == torch.float32
        assert 0.0 <= float(task.frames.min()) and float(task.frames.max()) <= 1.0
        assert torch.allclose(task.times, torch.linspace(0, 1, 5))
        shapes.add((h, w))
        sources.add(task.source)
    assert len(shapes) >= 4, "tasks should come in several resolutions"
    assert sources == set(CLIPS)


def test_sampling_is_deterministic(sampler):
    a = sampler.sample(np.random.default_rng([3, 1, 4]), 4)
    b = sampler.sample(np.random.default_rng([3, 1, 4]), 4)
    assert torch.equal(a.frames, b.frames) and a.source == b.source


def test_short_video_gives_shorter_task(sampler):
    task = sampler.sample(np.random.default_rng(0), 50)
    assert task.frames.shape[0] == 12  # max_frames kept per video
    assert float(task.times[-1]) == 1.0


def test_cache_is_bounded_lru(clip_dir, tmp_path):
    bus, desk = sorted(clip_dir.iterdir())[:2]
    cache = FrameCache(max_bytes=1, short_side=64, max_frames=4)
    a = cache.get(bus)
    assert a.dtype == np.uint8 and a.shape[0] == 4 and min(a.shape[1:3]) == 64
    cache.get(desk)
    assert len(cache) == 1 and desk in cache and bus not in cache  # budget holds one at most
    big = FrameCache(max_bytes=10**9, short_side=64, max_frames=4, disk_dir=tmp_path / "npy")
    big.get(bus)
    big.get(desk)
    big.get(bus)
    assert len(big) == 2 and big.decodes == 2
    again = FrameCache(max_bytes=10**9, short_side=64, max_frames=4, disk_dir=tmp_path / "npy")
    assert np.array_equal(again.get(bus), a) and again.decodes == 0


def test_meta_learning_code_never_names_the_held_out_folder():
    """Only train/ may feed a shipped init; the meta-learning package must not even name bench/."""
    pkg = Path(__file__).resolve().parents[1] / "metanerv"
    for src in pkg.rglob("*.py"):
        assert "bench" not in src.read_text().lower(), src
