"""Task sampler: shapes, resolutions, times, determinism and the bounded frame cache."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from nervcore.errors import NervcError
from metanerv.tasks import FrameCache, NativeFrames, TaskSampler, box_reduce, list_videos, parse_task_mix
from nervcore.video_io import read_video

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


# ----------------------------------------------------------------------------- full-resolution kinds

def test_parse_task_mix():
    assert parse_task_mix(None) == {"down": 1.0}
    mix = parse_task_mix("crop:0.3, down:0.2,native:0.5")
    assert list(mix) == ["down", "native", "crop"] and sum(mix.values()) == pytest.approx(1.0)
    assert mix["native"] == pytest.approx(0.5)
    assert parse_task_mix("native") == {"native": 1.0}
    assert parse_task_mix("native:1,crop:0") == {"native": 1.0}
    for bad in ("bench:1", "native:-1", "native:x", "native:0", "native:nan"):
        with pytest.raises(ValueError):
            parse_task_mix(bad)


def _full_res_sampler(clip_dir, mix, **kw) -> TaskSampler:
    args = dict(sides=(32, 64), cache_mb=16, short_side=96, max_frames=12, mix=mix,
                stride=32, crop_widths=(256, 832), gops=(8,), native_cache_mb=64)
    args.update(kw)
    return TaskSampler(clip_dir, **args)


def test_native_tasks_are_whole_padded_frames_of_a_gop_span(clip_dir):
    sampler = _full_res_sampler(clip_dir, "native")
    sizes = {"bus_qcif_30f.264": (144, 176), "desk_320x240_36f.mp4": (240, 320)}
    seen = set()
    for i in range(12):
        task = sampler.sample(np.random.default_rng(i), 5)
        n, c, h, w = task.frames.shape
        vh, vw = sizes[task.source]
        assert task.kind == "native" and task.frames.dtype == torch.uint8 and n == 5 and c == 3
        assert (h, w) == (-(-vh // 32) * 32, -(-vw // 32) * 32)  # padded up to the stride
        assert torch.equal(task.frames[:, :, vh:, :], task.frames[:, :, vh - 1:vh, :].expand(-1, -1, h - vh, -1))
        x = task.pixels()
        assert x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert torch.equal(task.pixels(torch.tensor([1, 3])), x[[1, 3]])
        # times are positions in a GOP span of 8 frames: distinct multiples of 1/7
        assert task.span == 8
        k = task.times * (task.span - 1)
        assert torch.allclose(k, k.round(), atol=1e-5) and len(set(k.round().tolist())) == n
        assert 0.0 <= float(task.times.min()) and float(task.times.max()) <= 1.0
        seen.add(task.source)
    assert seen == set(CLIPS)
    assert sampler.native.nbytes <= sampler.native.max_bytes


def test_native_max_side_box_reduces_large_videos(clip_dir):
    sampler = _full_res_sampler(clip_dir, "native", native_max_side=200)
    for i in range(8):
        task = sampler.sample(np.random.default_rng(i), 3)
        h, w = task.hw
        if task.source.startswith("desk"):
            assert (h, w) == (128, 160)  # 320x240 by a 2x2 box -> 160x120, padded to 32
        else:
            assert (h, w) == (160, 192)  # 176x144 fits: native


def test_crop_tasks_are_full_resolution_windows(clip_dir):
    sampler = _full_res_sampler(clip_dir, "crop", stride=16, sides=(32, 48))
    widths, heights = set(), set()
    for i in range(30):
        task = sampler.sample(np.random.default_rng(i), 4)
        h, w = task.hw
        assert task.kind == "crop" and h % 16 == 0 and w % 16 == 0
        if task.source.startswith("desk"):  # 320x240: widths 256..320, heights within the frame
            assert 256 <= w <= 320 and 16 <= h <= 240
            widths.add(w)
            heights.add(h)
        else:  # 176 px wide, narrower than the smallest crop: the widest stride multiple
            assert w == 176 and h <= 144
    assert len(widths) >= 3 and len(heights) >= 3


def test_full_res_tasks_do_not_depend_on_the_cache(clip_dir):
    """A tight frame budget (evictions, re-decoding) must give the same tasks as a roomy one."""
    big = _full_res_sampler(clip_dir, "native:0.4,crop:0.4,down:0.2", native_cache_mb=64)
    tight = _full_res_sampler(clip_dir, "native:0.4,crop:0.4,down:0.2", native_cache_mb=0.2)
    kinds = set()
    for i in range(10):
        a = big.sample(np.random.default_rng([7, i]), 4)
        b = tight.sample(np.random.default_rng([7, i]), 4)
        assert a.kind == b.kind and a.source == b.source and torch.equal(a.frames, b.frames)
        assert torch.equal(a.times, b.times)
        kinds.add(a.kind)
        assert tight.native.nbytes <= tight.native.max_bytes
    assert kinds == {"down", "native", "crop"}
    assert tight.native.decoded_frames > big.native.decoded_frames


def test_native_frames_decodes_only_what_is_missing(clip_dir):
    bus = clip_dir / "bus_qcif_30f.264"  # 30 frames
    ref = read_video(bus, frames=slice(0, 30)).frames
    # a short video is counted by decoding it, which caches every frame
    short = NativeFrames(max_bytes=10**8, max_frames=40, chunk=8)
    assert short.info(bus) == (30, 144, 176) and short.decoded_frames == 30 and len(short) == 30
    assert np.array_equal(short.frames(bus, np.array([2, 5, 29])), ref[[2, 5, 29]])
    assert short.decoded_frames == 30
    # a long one by demuxing: only frame 0 is decoded; the last 8 packets are not trusted
    long = NativeFrames(max_bytes=10**8, max_frames=40, decode_count_below=16)
    assert long.info(bus) == (22, 144, 176) and long.decoded_frames == 1
    capped = NativeFrames(max_bytes=10**8, max_frames=20, decode_count_below=16)
    assert capped.info(bus) == (20, 144, 176) and capped.decoded_frames == 1
    assert np.array_equal(long.frames(bus, np.array([5, 9])), ref[[5, 9]])
    assert long.decoded_frames == 1 + 5  # the span 5..9, now cached
    assert np.array_equal(long.frames(bus, np.array([6, 8])), ref[[6, 8]]) and long.decoded_frames == 6
    assert np.array_equal(long.frames(bus, np.array([4]), factor=2)[0], box_reduce(ref[4:5], 2)[0])
    # cached frames own their memory: a view would keep a whole decoded span alive, unbudgeted
    for cache in (short, long):
        assert all(f.base is None for f in cache._frames.values())
        assert cache.nbytes == sum(f.nbytes for f in cache._frames.values())


def test_tasks_read_only_the_given_folder(clip_dir, monkeypatch):
    """Whatever the kind, every decode is of a video inside the task folder."""
    import metanerv.tasks as tasks_mod
    opened = []
    real = tasks_mod.read_video

    def spy(path, *a, **k):
        opened.append(Path(path).resolve().parent)
        return real(path, *a, **k)

    monkeypatch.setattr(tasks_mod, "read_video", spy)
    sampler = _full_res_sampler(clip_dir, "native:1,crop:1,down:1")
    for i in range(6):
        sampler.sample(np.random.default_rng(i), 3)
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    assert opened and set(opened) <= {(data / "fixtures").resolve()}


@pytest.mark.parametrize("kind", ["down", "native"])
def test_colour_augmentation_reorders_channels_and_costs_nothing_when_off(clip_dir, kind):
    """colour=1: every task is the un-augmented task with its RGB channels in another order
    (same rng seed, so the same clip, span and crop); colour=0 draws no extra random number,
    so runs without it sample exactly the tasks they always did."""
    def make(colour):
        if kind == "down":
            return TaskSampler(clip_dir, sides=(32, 48, 64), cache_mb=64, short_side=96, max_frames=12,
                               colour=colour)
        return _full_res_sampler(clip_dir, kind, colour=colour)
    plain, coloured = make(0.0), make(1.0)
    orders = set()
    for i in range(12):
        a = plain.sample(np.random.default_rng(i), 4).frames
        b = coloured.sample(np.random.default_rng(i), 4).frames
        perm = next((p for p in itertools.permutations(range(3)) if torch.equal(a[:, list(p)], b)), None)
        assert perm is not None and perm != (0, 1, 2)
        orders.add(perm)
    assert len(orders) >= 3
    # off draws nothing: a sampler that draws (and never reorders) leaves the rng elsewhere
    r0, r1 = np.random.default_rng(5), np.random.default_rng(5)
    assert torch.equal(plain.sample(r0, 4).frames, make(1e-12).sample(r1, 4).frames)
    assert r0.random() != r1.random()
    with pytest.raises(ValueError):
        make(1.5)
