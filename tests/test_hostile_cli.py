"""Every class of bad input through the CLI: one line on stderr, a non-zero exit, no output left.

``main(argv)`` is called directly. A failing command must print exactly one line starting with
``nervc: error:`` and leave the output directory as it was (no output, no temporary file).
"""
from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from codec.cli import main
from nervcore.video_io import read_video, write_video
from tests.conftest import DATA
from tests.fuzz.mutate import CORPUS, fix_crcs, load_seeds, serialize

ENC = ["--steps", "2", "--init", "random", "--quiet"]
DELTA_SEED = CORPUS / "seed_tinyA_8x8_q3_gop2.nerv"
INIT_A = str(CORPUS / "init_tinyA.safetensors")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """4 real frames, 24x16, lossless mkv."""
    v = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 4))
    p = tmp_path_factory.mktemp("src") / "clip.mkv"
    write_video(p, v.frames[:, 50:66, 60:84], v.fps, 24, 16)
    return p


@pytest.fixture()
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def _fails(capsys, argv: list[str], match: str, out_dir: Path | None = None, keep=()) -> str:
    before = sorted(p.name for p in out_dir.iterdir()) if out_dir else None
    rc = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc != 0, argv
    assert len(lines) == 1 and lines[0].startswith("nervc: error: "), err
    assert match.lower() in lines[0].lower(), lines[0]
    if out_dir is not None:
        assert sorted(p.name for p in out_dir.iterdir()) == before, "output or temp file left behind"
    return lines[0]


# ------------------------------------------------------------------ encode: bad sources

def test_encode_missing_file(capsys, out_dir, tmp_path):
    _fails(capsys, ["encode", str(tmp_path / "nope.mp4"), str(out_dir / "o.nerv"), *ENC],
           "no such file", out_dir)


def test_encode_directory_without_frames(capsys, out_dir, tmp_path):
    (tmp_path / "empty_dir").mkdir()
    _fails(capsys, ["encode", str(tmp_path / "empty_dir"), str(out_dir / "o.nerv"), *ENC],
           "no .png frames", out_dir)


def test_encode_empty_file(capsys, out_dir, tmp_path):
    (tmp_path / "e.mp4").write_bytes(b"")
    _fails(capsys, ["encode", str(tmp_path / "e.mp4"), str(out_dir / "o.nerv"), *ENC], "empty file", out_dir)


def test_encode_text_file_renamed_mp4(capsys, out_dir, tmp_path):
    (tmp_path / "t.mp4").write_text("this is not a video\n" * 50)
    _fails(capsys, ["encode", str(tmp_path / "t.mp4"), str(out_dir / "o.nerv"), *ENC],
           "not a readable video", out_dir)


def test_encode_zero_frame_video(capsys, out_dir, tmp_path):
    p = tmp_path / "zero.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        c.start_encoding()  # write the header although no frame follows
    assert p.stat().st_size > 0
    _fails(capsys, ["encode", str(p), str(out_dir / "o.nerv"), *ENC], "video", out_dir)


def test_encode_raw_yuv_wrong_or_missing_size(capsys, out_dir):
    yuv = DATA / "fixtures" / "foreman_cif_2f.yuv"
    _fails(capsys, ["encode", str(yuv), str(out_dir / "o.nerv"), "--size", "320x240", *ENC],
           "not a whole number", out_dir)
    _fails(capsys, ["encode", str(yuv), str(out_dir / "o.nerv"), "--size", "351x288", *ENC],
           "even width and height", out_dir)
    _fails(capsys, ["encode", str(yuv), str(out_dir / "o.nerv"), "--size", "big", *ENC], "bad size", out_dir)


def test_encode_raw_yuv_without_size(capsys, out_dir, tmp_path):
    raw = tmp_path / "clip.yuv"
    shutil.copy(DATA / "fixtures" / "foreman_cif_2f.yuv", raw)
    _fails(capsys, ["encode", str(raw), str(out_dir / "o.nerv"), *ENC], "--size", out_dir)


def test_encode_bad_options(capsys, out_dir, clip):
    o = str(out_dir / "o.nerv")
    _fails(capsys, ["encode", str(clip), o, "--bpp", "-1", *ENC], "bpp", out_dir)
    _fails(capsys, ["encode", str(clip), o, "--bpp", "nan", *ENC], "bpp", out_dir)
    _fails(capsys, ["encode", str(clip), o, "--lam", "-2", *ENC], "lam", out_dir)
    _fails(capsys, ["encode", str(clip), o, "-q", "9", *ENC], "invalid choice", out_dir)
    _fails(capsys, ["encode", str(clip), o, "--frames", "5:2", *ENC], "frame range", out_dir)
    _fails(capsys, ["encode", str(clip), o, "--frames", "100:", *ENC], "no frames", out_dir)
    _fails(capsys, ["encode", str(clip), o, "--steps", "x", "--quiet"], "invalid int", out_dir)


def test_encode_missing_or_broken_init(capsys, out_dir, clip, tmp_path):
    o = str(out_dir / "o.nerv")
    _fails(capsys, ["encode", str(clip), o, "--steps", "2", "--quiet", "--init", str(tmp_path / "no.safetensors")],
           "no such file", out_dir)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    _fails(capsys, ["encode", str(clip), o, "--steps", "2", "--quiet", "--init", str(junk)], "init", out_dir)
    # valid safetensors, hostile content: these crashed the encoder (AttributeError, RuntimeError)
    import torch
    from safetensors.torch import save_file

    from metanerv.init_file import save_init
    from metanerv.model import NeRVConfig, build_model
    meta = tmp_path / "meta.safetensors"
    save_file({"x": torch.zeros(1)}, str(meta), metadata={"format": "nervc-init/1", "config": "[1, 2]"})
    _fails(capsys, ["encode", str(clip), o, "--steps", "2", "--quiet", "--init", str(meta)],
           "bad configuration metadata", out_dir)
    cfg = NeRVConfig(pe_freqs=2, embed_dim=4, grid_channels=2, grid_anchors=1, channels=(4,), strides=(2,))
    state = build_model(cfg, (1, 1)).state_dict()
    del state["head.weight"]
    save_init(tmp_path / "short.safetensors", cfg, state)
    _fails(capsys, ["encode", str(clip), o, "--steps", "2", "--quiet", "--init", str(tmp_path / "short.safetensors")],
           "tensor head.weight is missing", out_dir)


# ------------------------------------------------------------------ encode: bad outputs

def test_encode_unwritable_outputs(capsys, out_dir, clip, tmp_path):
    _fails(capsys, ["encode", str(clip), str(tmp_path / "no" / "dir" / "o.nerv"), *ENC], "does not exist")
    (tmp_path / "file").write_text("x")
    _fails(capsys, ["encode", str(clip), str(tmp_path / "file" / "o.nerv"), *ENC], "does not exist")
    (out_dir / "d.nerv").mkdir()
    _fails(capsys, ["encode", str(clip), str(out_dir / "d.nerv"), "-y", *ENC], "directory", out_dir)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_encode_output_fails_at_write_time(capsys, clip):
    # root can write anywhere permissions allow, but not create files in /proc: the failure
    # comes after training, from the writer itself
    _fails(capsys, ["encode", str(clip), "/proc/nervc-test.nerv", *ENC], "cannot write")


def test_encode_existing_output_needs_y(capsys, out_dir, clip):
    o = out_dir / "o.nerv"
    o.write_bytes(b"precious")
    _fails(capsys, ["encode", str(clip), str(o), *ENC], "already exists", out_dir)
    assert o.read_bytes() == b"precious"


# ------------------------------------------------------------------ decode

def test_decode_missing_directory_empty_and_text(capsys, out_dir, tmp_path):
    o = str(out_dir / "o.mkv")
    _fails(capsys, ["decode", str(tmp_path / "nope.nerv"), o, "--quiet"], "no such file", out_dir)
    (tmp_path / "d.nerv").mkdir()
    _fails(capsys, ["decode", str(tmp_path / "d.nerv"), o, "--quiet"], "not a file", out_dir)
    (tmp_path / "e.nerv").write_bytes(b"")
    _fails(capsys, ["decode", str(tmp_path / "e.nerv"), o, "--quiet"], "empty file", out_dir)
    (tmp_path / "t.nerv").write_text("hello\n" * 100)
    _fails(capsys, ["decode", str(tmp_path / "t.nerv"), o, "--quiet"], "not a .nerv file", out_dir)
    _fails(capsys, ["decode", str(DATA / "fixtures" / "bus_qcif_30f.264"), o, "--quiet"], "bad magic", out_dir)


def test_decode_future_version(capsys, out_dir, tmp_path):
    data = bytearray(DELTA_SEED.read_bytes())
    data[4] = 5
    p = tmp_path / "future.nerv"
    p.write_bytes(fix_crcs(bytes(data)))
    line = _fails(capsys, ["decode", str(p), str(out_dir / "o.mkv"), "--quiet"], "version 5.0", out_dir)
    assert "upgrade nervc" in line
    _fails(capsys, ["info", str(p)], "version 5.0")
    data[4] = 1  # a nervc 0.1 file: named, not called a future version
    p.write_bytes(fix_crcs(bytes(data)))
    line = _fails(capsys, ["decode", str(p), str(out_dir / "o.mkv"), "--quiet"], "version 1.0", out_dir)
    assert "no longer supported" in line


def test_decode_missing_and_wrong_init(capsys, out_dir, tmp_path):
    o = str(out_dir / "o.mkv")
    line = _fails(capsys, ["decode", str(DELTA_SEED), o, "--quiet"], "--init PATH", out_dir)
    assert "encoded with init" in line
    _fails(capsys, ["decode", str(DELTA_SEED), o, "--quiet", "--init", str(CORPUS / "init_tinyB.safetensors")],
           "init_tinyB", out_dir)
    _fails(capsys, ["decode", str(DELTA_SEED), o, "--quiet", "--init", str(tmp_path / "gone.safetensors")],
           "encoded with init", out_dir)
    assert main(["decode", str(DELTA_SEED), o, "--quiet", "--init", INIT_A, "--device", "cpu"]) == 0


def test_decode_truncated_and_corrupted(capsys, out_dir, tmp_path):
    data = DELTA_SEED.read_bytes()
    o = str(out_dir / "o.mkv")
    for i, cut in enumerate([5, 60, 100, len(data) // 2, len(data) - 1]):
        p = tmp_path / f"trunc{i}.nerv"
        p.write_bytes(data[:cut])
        _fails(capsys, ["decode", str(p), o, "--quiet", "--init", INIT_A], str(p), out_dir)
    for i, pos in enumerate([20, 200, len(data) // 2, len(data) - 3]):
        b = bytearray(data)
        b[pos] ^= 0x10
        p = tmp_path / f"flip{i}.nerv"
        p.write_bytes(bytes(b))
        _fails(capsys, ["decode", str(p), o, "--quiet", "--init", INIT_A], "CRC mismatch", out_dir)
        _fails(capsys, ["info", str(p)], "CRC mismatch")
    # a flipped bit inside entropy-coded words, CRCs recomputed: caught by the ANS checks
    seed = next(s for s in load_seeds() if s.name == DELTA_SEED.name)
    gops = copy.deepcopy(seed.gops)
    words = gops[0].words.copy()
    words[len(words) // 2] ^= 1 << 20
    gops[0].words = words
    p = tmp_path / "deep.nerv"
    p.write_bytes(serialize(seed.header, gops))
    _fails(capsys, ["decode", str(p), o, "--quiet", "--init", INIT_A], "corrupted", out_dir)


def test_decode_existing_output_and_unwritable_output(capsys, out_dir, tmp_path):
    o = out_dir / "o.mkv"
    o.write_bytes(b"precious")
    _fails(capsys, ["decode", str(DELTA_SEED), str(o), "--quiet", "--init", INIT_A], "already exists", out_dir)
    assert o.read_bytes() == b"precious"
    _fails(capsys, ["decode", str(DELTA_SEED), str(tmp_path / "no" / "o.mkv"), "--quiet", "--init", INIT_A],
           "does not exist")
    _fails(capsys, ["decode", str(DELTA_SEED), str(out_dir / "o.avi"), "--quiet", "--init", INIT_A],
           "unknown output type", out_dir)
    _fails(capsys, ["decode", str(DELTA_SEED), str(out_dir / "x.mkv"), "--quiet", "--init", INIT_A,
                    "--frames", "50:60"], "selects no frames", out_dir)


def test_decode_memory_limit_is_a_clear_error(capsys, out_dir, monkeypatch):
    monkeypatch.setenv("NERVC_DECODE_MEMORY", "1K")
    _fails(capsys, ["decode", str(DELTA_SEED), str(out_dir / "o.mkv"), "--quiet", "--init", INIT_A],
           "decode memory limit", out_dir)


# ------------------------------------------------------------------ odd sizes must work

@pytest.mark.parametrize("w,h", [(23, 17), (1, 1), (7, 2)])
def test_odd_sizes_encode_and_decode(capsys, tmp_path, w, h):
    v = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 2))
    src = tmp_path / "odd.mkv"
    write_video(src, v.frames[:, 40:40 + h, 50:50 + w], v.fps, w, h)
    nerv = tmp_path / "odd.nerv"
    assert main(["encode", str(src), str(nerv), *ENC]) == 0, capsys.readouterr().err
    for name in ("odd.mp4", "odd.y4m", "odd.mkv", "odd_png"):
        dst = tmp_path / "dec" / name
        dst.parent.mkdir(exist_ok=True)
        assert main(["decode", str(nerv), str(dst), "--quiet", "--device", "cpu"]) == 0, capsys.readouterr().err
        back = read_video(dst)
        even = (h + h % 2, w + w % 2) if name == "odd.mp4" else (h, w)  # .mp4: padded to 4:2:0
        assert back.frames.shape == (2, *even, 3), name
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == ["odd.mkv", "odd.mp4", "odd.y4m", "odd_png"]
    assert np.isfinite(back.frames).all()
