"""Streaming reads: ``open_video(...).chunks(n)`` gives read_video's pixels in bounded memory.

The reference decoder below is the pre-streaming ``read_video`` (decode everything with PyAV,
``to_ndarray(format="rgb24")``), kept here so the comparison does not test the code with itself.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import nervcore.video_io as vio
from nervcore.errors import NervcError
from nervcore.video_io import ArraySource, Video, as_source, open_video, read_video
from tests.conftest import DATA, REPO, manifest

FIX = DATA / "fixtures"
BENCH = DATA / "bench"


def reference_frames(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """All frames, decoded the way read_video did before streaming existed."""
    if path.is_dir():
        out = []
        for f in sorted(path.glob("*.png")):
            with av.open(str(f)) as c:
                out.append(next(c.decode(video=0)).to_ndarray(format="rgb24"))
        return np.stack(out)
    if path.suffix.lower() in vio.RAW_EXTS:
        w, h = size
        raw = np.fromfile(path, np.uint8).reshape(-1, h * 3 // 2, w)
        return np.stack([av.VideoFrame.from_ndarray(f, format="yuv420p").to_ndarray(format="rgb24")
                         for f in raw])
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(s)])


def concat(chunks) -> np.ndarray:
    return np.concatenate(list(chunks))


SOURCES = [  # (path, size passed, frames in the file)
    (FIX / "bus_qcif_30f.264", None, 30),
    (FIX / "cars_320x240.h265", None, 30),
    (FIX / "desk_320x240_36f.mp4", None, 36),
    (FIX / "tree_cinepak_rgb24.avi", None, 68),
    (FIX / "foreman_cif_2f.yuv", None, 2),
    (BENCH / "cars_320x240_30f.i420", (320, 240), 30),
    (BENCH / "carphone_qcif_120f.mp4", None, 120),
]


@pytest.mark.parametrize("path,size,total", SOURCES, ids=[p.name for p, _, _ in SOURCES])
def test_chunks_equal_read_video_and_reference(path, size, total):
    src = open_video(path, size=size)
    assert src.num_frames == total
    ref = reference_frames(path, size or vio._size_from_name(path))
    assert (src.height, src.width) == ref.shape[1:3]
    chunks = list(src.chunks(7))
    assert [len(c) for c in chunks] == [7] * (total // 7) + ([total % 7] if total % 7 else [])
    assert all(c.dtype == np.uint8 and c.shape[1:] == (src.height, src.width, 3) for c in chunks)
    assert np.array_equal(np.concatenate(chunks), ref)
    assert np.array_equal(read_video(path, size=size).frames, ref)
    assert np.array_equal(concat(src.chunks(total + 5)), ref)  # re-iterable, one short chunk


def test_raw_yuv_size_from_flag_not_name(tmp_path):
    blind = tmp_path / "clip.yuv"
    blind.symlink_to(BENCH / "cars_320x240_30f.i420")
    with pytest.raises(NervcError, match="--size"):
        open_video(blind)
    src = open_video(blind, size=(320, 240), fps=Fraction(30))
    assert (src.width, src.height, src.num_frames, src.fps) == (320, 240, 30, 30)
    assert np.array_equal(concat(src.chunks(8)), reference_frames(blind, (320, 240)))


def test_png_folder_counts_files_and_streams_a_range():
    folder = BENCH / "BasketballPass_416x240_png"
    assert open_video(folder).num_frames == 100
    src = open_video(folder, frames=slice(90, None))
    assert (src.num_frames, src.width, src.height) == (10, 416, 240)
    ref = reference_frames(folder)[90:]  # decodes 100 PNGs, ~1 s
    assert np.array_equal(concat(src.chunks(4)), ref)
    assert np.array_equal(read_video(folder, frames=slice(90, None)).frames, ref)


@pytest.mark.parametrize("path", [FIX / "bus_qcif_30f.264", FIX / "foreman_cif_2f.yuv",
                                  BENCH / "BasketballPass_416x240_png"], ids=lambda p: p.name)
def test_frame_ranges(path):
    full = read_video(path, frames=slice(0, 6)).frames
    for sel, n in [(slice(1, 2), 1), (slice(1, None), None), (slice(0, 1000), None)]:
        src = open_video(path, frames=sel)
        total = open_video(path).num_frames
        want = len(range(total)[sel]) if n is None else n
        assert src.num_frames == want
        got = concat(src.chunks(3))
        assert len(got) == want
        assert np.array_equal(got[: min(want, 5)], full[sel.start:sel.start + min(want, 5)])
    with pytest.raises(NervcError, match="no frames in the selected range"):
        open_video(path, frames=slice(total, total + 3))


def test_frame_count_needs_no_decoding(monkeypatch):
    """Every manifest clip is counted from packets, file size or file list: decoding is off."""
    def no_frames(self, *a, **k):
        raise AssertionError("open_video decoded frames to count them")

    monkeypatch.setattr(vio._ContainerSource, "_count_by_decoding", no_frames)
    monkeypatch.setattr(vio._ContainerSource, "_av_frames", lambda self: (f for f in [av.VideoFrame(2, 2, "yuv420p")]))
    monkeypatch.setattr(vio, "_png_frame", lambda f: av.VideoFrame(416, 240, "rgb24"))
    for row in manifest():
        src = open_video(DATA / row["role"] / row["file"])
        assert src.num_frames == int(row["frames"]), row["file"]


def test_edit_list_discarded_packet_is_not_counted():
    """box.mp4 holds 456 packets; its edit list drops the last one, so 455 frames decode."""
    path = DATA / "train" / "box.mp4"
    src = open_video(path, frames=slice(440, None))
    assert open_video(path).num_frames == 455 and src.num_frames == 15
    assert sum(len(c) for c in src.chunks(4)) == 15


def test_resolution_change_mid_stream_is_one_clear_error(tmp_path):
    joined = tmp_path / "joined.264"
    joined.write_bytes((FIX / "bus_qcif_30f.264").read_bytes() + (BENCH / "mobile_cif_30f.264").read_bytes())
    src = open_video(joined)
    assert (src.width, src.height) == (176, 144)
    with pytest.raises(NervcError, match="frame size changes mid-stream") as e:
        for _ in src.chunks(8):
            pass
    assert "\n" not in str(e.value)
    assert np.array_equal(concat(open_video(joined, frames=slice(0, 30)).chunks(8)),
                          reference_frames(FIX / "bus_qcif_30f.264"))


def test_errors_are_one_line(tmp_path):
    (tmp_path / "text.mp4").write_text("not a video at all\n" * 20)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "odd_175x143.yuv").write_bytes(bytes(175 * 143 * 3))
    (tmp_path / "short_176x144.yuv").write_bytes(bytes(1000))
    (tmp_path / "nopng").mkdir()
    (tmp_path / "nopng" / "a.txt").write_text("x")
    cases = {"missing.mp4": "no such file", "text.mp4": "not a readable video",
             "empty.mp4": "empty file", "odd_175x143.yuv": "even width and height",
             "short_176x144.yuv": "not a whole number", "nopng": "no .png frames"}
    for name, msg in cases.items():
        with pytest.raises(NervcError, match=msg) as e:
            open_video(tmp_path / name)
        assert "\n" not in str(e.value), name
    with pytest.raises(ValueError):
        next(open_video(FIX / "bus_qcif_30f.264").chunks(0))
    with pytest.raises(NervcError, match="bad frame range"):
        open_video(FIX / "bus_qcif_30f.264", frames=slice(-3, None))


def test_array_source_and_as_source():
    v = read_video(FIX / "bus_qcif_30f.264", frames=slice(0, 5))
    src = as_source(v)
    assert isinstance(src, ArraySource) and as_source(src) is src
    assert (src.width, src.height, src.num_frames, src.fps) == (176, 144, 5, v.fps)
    assert [len(c) for c in src.chunks(2)] == [2, 2, 1]
    assert np.array_equal(concat(src.chunks(2)), v.frames)
    path_src = as_source(FIX / "bus_qcif_30f.264", frames=slice(0, 5))
    assert np.array_equal(path_src.read().frames, v.frames)
    with pytest.raises(NervcError):
        ArraySource(Video(np.zeros((2, 4, 4), np.uint8), Fraction(25)))


# ------------------------------------------------------------------ memory bound

LONG_W, LONG_H, LONG_N = 352, 288, 600


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """600 CIF frames of moving gradients (H.264 ultrafast, ~1 MB): 182 MB once decoded."""
    path = tmp_path_factory.mktemp("long") / "long_cif.mp4"
    yy, xx = np.mgrid[0:LONG_H, 0:LONG_W]
    base = [np.stack([(xx + 3 * i) % 256, (yy + i) % 256, ((xx + yy) // 2 + 2 * i) % 256], -1).astype(np.uint8)
            for i in range(24)]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "30"})
        s.width, s.height, s.pix_fmt = LONG_W, LONG_H, "yuv420p"
        for i in range(LONG_N):
            frame = base[i % 24].copy()
            frame[:16, : 16 + i % 300] = 255  # every frame differs
            for pkt in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from nervcore.video_io import open_video

    def vm(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    src = open_video(sys.argv[1])
    clip = src.num_frames * src.frame_bytes
    it = src.chunks(8)
    n, total = 0, 0
    first = next(it)  # decoder threads and their stacks exist from here on
    # Address-space cap: what the process maps now plus half the decoded clip. Set only now,
    # because thread stacks and per-thread malloc arenas are address space, not data.
    limit = vm("VmSize") + clip // 2
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        np.ones(clip, np.uint8)
        control = "allocated"
    except MemoryError:
        control = "MemoryError"
    hwm0 = vm("VmHWM")
    for c in [first]:
        n += len(c); total += int(c[:, ::37, ::41].sum())
    del first, c
    for c in it:
        assert c.shape[0] <= 8
        n += len(c); total += int(c[:, ::37, ::41].sum())
    print(json.dumps({"frames": n, "num_frames": src.num_frames, "clip_bytes": clip,
                      "limit_over_vm": clip // 2, "control": control,
                      "hwm_growth": vm("VmHWM") - hwm0, "checksum": total}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_long_clip_streams_under_an_address_space_cap(long_clip):
    env = dict(os.environ, MALLOC_ARENA_MAX="2", PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", CHILD, str(long_clip)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print(out)
    assert out["frames"] == out["num_frames"] == LONG_N
    assert out["clip_bytes"] == LONG_N * LONG_W * LONG_H * 3
    assert out["control"] == "MemoryError", "the cap would have let the whole clip be buffered"
    assert out["hwm_growth"] < out["clip_bytes"] // 8, out  # peak RSS barely moves while streaming
    # the same pixels as the in-memory reader (checked on a sample, in this process)
    ref = read_video(long_clip, frames=slice(590, None)).frames
    tail = concat(open_video(long_clip, frames=slice(587, None)).chunks(8))
    assert len(tail) == 13 and np.array_equal(tail[3:], ref)
