"""No path through nervc deletes or replaces anything but the one output file it names.

Each case of the real-files issue's data-loss list, table-driven: the command must fail with one
``nervc: error:`` line (or succeed where replacing is exactly what was asked) and every file of
the user's must be where it was, byte for byte.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from codec.cli import main
from nervcore.video_io import read_video, write_video
from tests.conftest import DATA

ENC = ["--steps", "2", "--init", "random", "--quiet"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    v = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 3))
    p = tmp_path_factory.mktemp("src") / "clip.mkv"
    write_video(p, v.frames[:, 50:66, 60:84], v.fps, 24, 16)
    return p


@pytest.fixture(scope="module")
def nerv(clip, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("nerv") / "x.nerv"
    assert main(["encode", str(clip), str(p), *ENC]) == 0
    return p


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file bytes, or the kind of a non-file."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            mode = os.lstat(p).st_mode
            key = str(p.relative_to(root))
            if stat.S_ISREG(mode):
                out[key] = p.read_bytes()
            else:
                out[key] = "dir" if stat.S_ISDIR(mode) else oct(stat.S_IFMT(mode))
    return out


def _user_files(root: Path) -> None:
    (root / "mine.txt").write_text("keep me")
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_text("keep me too")


# (name, layout maker, argv maker, cwd: "work" or None, expected error words)
def _frames_dir_with_others(w: Path) -> None:
    d = w / "out" / "myframes"
    d.mkdir(parents=True)
    (d / "important.txt").write_text("do not delete")
    (d / "holiday.png").write_bytes(b"\x89PNG not really")
    (d / "f00001.png").write_bytes(b"an old frame")


def _plain_file(w: Path) -> None:
    (w / "out").mkdir()
    (w / "out" / "notes").write_text("my notes")


def _fifo(w: Path) -> None:
    (w / "out").mkdir()
    os.mkfifo(w / "out" / "pipe.mp4")
    os.mkfifo(w / "out" / "pipe")


def _dir_named_mp4(w: Path) -> None:
    (w / "out.mp4").mkdir()
    (w / "out.mp4" / "inside.txt").write_text("x")


def _copy_input(w: Path, clip: Path) -> None:
    (w / "in").mkdir()
    (w / "in" / "same.mkv").write_bytes(clip.read_bytes())


CASES = [
    ("decode to the current folder", _user_files, lambda w, n: ["decode", str(n), ".", "-y"], True,
     "current folder"),
    ("decode into a folder of other files", _frames_dir_with_others,
     lambda w, n: ["decode", str(n), str(w / "out" / "myframes"), "-y"], False, "nervc did not write"),
    ("decode over an ordinary file as a folder", _plain_file,
     lambda w, n: ["decode", str(n), str(w / "out" / "notes"), "-y"], False, "not a folder"),
    ("decode over a fifo (.mp4)", _fifo, lambda w, n: ["decode", str(n), str(w / "out" / "pipe.mp4"), "-y"],
     False, "not a regular file"),
    ("decode over a fifo (folder)", _fifo, lambda w, n: ["decode", str(n), str(w / "out" / "pipe"), "-y"],
     False, "not a folder"),
    ("decode over a folder named .mp4", _dir_named_mp4, lambda w, n: ["decode", str(n), str(w / "out.mp4"), "-y"],
     False, "is a directory"),
]


@pytest.mark.parametrize("name,layout,argv,in_cwd,words", CASES, ids=[c[0] for c in CASES])
def test_decode_touches_nothing_but_its_output(tmp_path, nerv, capsys, monkeypatch, name, layout, argv,
                                                in_cwd, words):
    work = tmp_path / "work"
    work.mkdir()
    layout(work)
    before = _snapshot(work)
    if in_cwd:
        monkeypatch.chdir(work)
    assert main(argv(work, nerv)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nervc: error:") and words in err[0], err
    assert _snapshot(work) == before


ENCODE_CASES = [
    ("output is the input", lambda w: ["encode", str(w / "in" / "same.mkv"), str(w / "in" / "same.mkv"), "-y"],
     None, "NAME.nerv"),
    ("output is the input, named .nerv through a hard link",
     lambda w: ["encode", str(w / "in" / "same.mkv"), str(w / "in" / "link.nerv"), "-y"], "hard", "is the input"),
    ("output is the input through a symlink",
     lambda w: ["encode", str(w / "in" / "same.mkv"), str(w / "in" / "sym.nerv"), "-y"], "sym", "is the input"),
    ("output named like a video", lambda w: ["encode", str(w / "in" / "same.mkv"), str(w / "in" / "out.mp4")],
     None, "NAME.nerv"),
    ("output is a folder", lambda w: ["encode", str(w / "in" / "same.mkv"), str(w / "in" / "d.nerv"), "-y"],
     "dir", "is a directory"),
]


@pytest.mark.parametrize("name,argv,link,words", ENCODE_CASES, ids=[c[0] for c in ENCODE_CASES])
def test_encode_never_overwrites_its_input(tmp_path, clip, capsys, name, argv, link, words):
    work = tmp_path / "work"
    work.mkdir()
    _copy_input(work, clip)
    if link == "hard":
        os.link(work / "in" / "same.mkv", work / "in" / "link.nerv")
    elif link == "sym":
        (work / "in" / "sym.nerv").symlink_to(work / "in" / "same.mkv")
    elif link == "dir":
        (work / "in" / "d.nerv").mkdir()
        (work / "in" / "d.nerv" / "keep.txt").write_text("x")
    before = _snapshot(work)
    assert main(argv(work) + ENC) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nervc: error:") and words in err[0], err
    assert _snapshot(work) == before


def test_y_replaces_a_folder_of_nervcs_own_frames(tmp_path, nerv, capsys):
    """-y on a folder that holds only frame files nervc wrote replaces them, stale ones included."""
    out = tmp_path / "frames"
    out.mkdir()
    for i in range(1, 6):  # an earlier, longer decode
        (out / f"f{i:05d}.png").write_bytes(b"old")
    assert main(["decode", str(nerv), str(out), "-y", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["f00001.png", "f00002.png", "f00003.png"]
    assert read_video(out).frames.shape == (3, 16, 24, 3)


def test_y_replaces_exactly_the_file_named(tmp_path, nerv):
    """-y over a regular file replaces that file, and a symlink output replaces the link, not its target."""
    target = tmp_path / "precious.mp4"
    target.write_bytes(b"somebody's video")
    link = tmp_path / "link.mp4"
    link.symlink_to(target)
    assert main(["decode", str(nerv), str(link), "-y", "--quiet"]) == 0
    assert target.read_bytes() == b"somebody's video"
    assert link.is_file() and not link.is_symlink() and read_video(link).num_frames == 3
    plain = tmp_path / "plain.mp4"
    plain.write_bytes(b"old")
    assert main(["decode", str(nerv), str(plain), "-y", "--quiet"]) == 0
    assert read_video(plain).num_frames == 3


def test_png_folder_reads_in_numeric_order(tmp_path, clip):
    """frame1, frame2, frame10: read as a person numbers them, not as 1, 10, 2."""
    frames = read_video(clip).frames
    stack = np.concatenate([frames, frames[:1] // 2], axis=0)  # four distinct frames
    stack[3] = 255 - stack[0]
    folder = tmp_path / "pngs"
    tmp = tmp_path / "tmp_frames"
    write_video(tmp, stack, read_video(clip).fps, 24, 16)
    folder.mkdir()
    for i, name in enumerate(["frame1.png", "frame2.png", "frame10.png", "frame3.png"]):
        (tmp / f"f{i + 1:05d}.png").rename(folder / name)
    got = read_video(folder).frames
    order = [0, 1, 3, 2]  # 1, 2, 3, 10
    assert np.array_equal(got, stack[order])
