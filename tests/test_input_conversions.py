"""Real files lose nothing without a word (issue 34, item 0): one table, one row per case.

Each row makes a tiny input with PyAV (64x48, 4 to 24 frames; FFmpeg's command-line tool is
not needed), runs ``nervc encode`` on it (``nervc decode`` for the output rows) and checks:

* the exit status, and for a refused input the one ``nervc: error:`` line;
* the exact set of ``nervc: note:`` / ``nervc: warning:`` lines on stderr, each printed once,
  and none of them on stdout (which may be a y4m pipe);
* what reading the input gives (frame count and size; a rotated clip's pixels upright).

What nervc does with each case: a display matrix is applied (frames come out as players show
them); variable frame rate is encoded at one rate with a warning naming both spans; a
container that ends before its header says is refused, ``--frames`` within what it holds
encodes; 10-bit, alpha, HDR / wide-gamut tags, a non-square sample aspect ratio and audio are
each named in one note; an odd-sized ``.mp4`` output is padded to even (4:2:0) with a note.
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from codec.cli import main
from nervcore.video_io import read_video

W, H = 64, 48
ENC = ["--steps", "0", "--init", "random", "--quiet", "--device", "cpu"]
QUADRANTS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]  # TL, TR, BL, BR


def pattern(w: int = W, h: int = H) -> np.ndarray:
    """Four flat quadrants, so an orientation or a mirror is seen at once."""
    f = np.zeros((h, w, 3), np.uint8)
    f[:h // 2, :w // 2], f[:h // 2, w // 2:] = QUADRANTS[0], QUADRANTS[1]
    f[h // 2:, :w // 2], f[h // 2:, w // 2:] = QUADRANTS[2], QUADRANTS[3]
    return f


def make(path: Path, n: int = 4, codec: str = "libx264", pix_fmt: str = "yuv420p", pts_ms=None,
         rotation=None, ctx=None, audio: str | None = None, container_options=None, size=(W, H),
         noise: bool = False) -> Path:
    """Write ``n`` frames of :func:`pattern` (of noise: every frame costs about the same bytes)
    with PyAV, tagged and timed as asked."""
    w, h = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if pts_ms is not None:
            s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for k, v in (ctx or {}).items():
            setattr(s.codec_context, k, v)
        if rotation is not None:
            s.set_display_rotation(*rotation)
        a = c.add_stream(audio, rate=8000) if audio else None
        for i in range(n):
            rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if noise else pattern(w, h)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            for k, v in (ctx or {}).items():
                if k.startswith("color"):
                    setattr(f, k, v)
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[i], Fraction(1, 1000)
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
        if a is not None:
            af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            af.sample_rate, af.pts = 8000, 0
            for pkt in [*a.encode(af), *a.encode()]:
                c.mux(pkt)
    return path


CUT = dict(n=24, noise=True, container_options={"movflags": "faststart"})  # the index up front


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def png_folder(folder: Path, pix_fmt: str, n: int = 4) -> Path:
    folder.mkdir()
    for i in range(n):
        with av.open(str(folder / f"f{i + 1}.png"), "w", format="image2") as c:
            s = c.add_stream("png")
            s.width, s.height, s.pix_fmt = W, H, pix_fmt
            f = av.VideoFrame.from_ndarray(pattern(), format="rgb24").reformat(format=pix_fmt)
            for pkt in [*s.encode(f), *s.encode()]:
                c.mux(pkt)
    return folder


def odd_nerv(tmp: Path) -> Path:
    """A .nerv of a 23x17 clip (no notes on the way: FFV1 RGB in mkv)."""
    src = make(tmp / "odd.mkv", n=2, codec="ffv1", pix_fmt="bgr0", size=(23, 17))
    assert main(["encode", str(src), str(tmp / "odd.nerv"), *ENC]) == 0
    return tmp / "odd.nerv"


def upright(o: str):
    """The pattern as players show it after the display matrix ``o``."""
    return {"cw": lambda f: np.rot90(f, -1), "ccw": lambda f: np.rot90(f, 1),
            "180": lambda f: np.rot90(f, 2), "hflip": lambda f: f[:, ::-1]}[o](pattern())


HDR = dict(color_primaries=9, colorspace=9)  # BT.2020 primaries and matrix
CASES = [
    # id, how to make the input (tmp folder -> argv after the command), command, exit status,
    # the note / warning / error lines (regexes, each exactly once), the input as read (frames,
    # height, width), the upright picture for rotated rows
    ("plain-mp4-says-nothing", lambda t: [make(t / "a.mp4")], "encode", 0, [], (4, H, W), None),
    ("phone-rotate-90", lambda t: [make(t / "a.mp4", rotation=(-90,))], "encode", 0,
     [r"note: a\.mp4: display matrix applied: the 64x48 frames are rotated 90° clockwise to 48x64"],
     (4, W, H), "cw"),
    ("rotate-270", lambda t: [make(t / "a.mp4", rotation=(90,))], "encode", 0,
     [r"note: a\.mp4: display matrix applied: .* rotated 90° counter-clockwise to 48x64"], (4, W, H), "ccw"),
    ("rotate-180", lambda t: [make(t / "a.mp4", rotation=(180,))], "encode", 0,
     [r"note: a\.mp4: display matrix applied: .* rotated 180° to 64x48"], (4, H, W), "180"),
    ("mirrored", lambda t: [make(t / "a.mp4", rotation=(0, True))], "encode", 0,
     [r"note: a\.mp4: display matrix applied: .* mirrored left-right to 64x48"], (4, H, W), "hflip"),
    ("vfr-mkv", lambda t: [make(t / "a.mkv", codec="ffv1", pts_ms=[0, 100, 500, 900])], "encode", 0,
     [r"warning: a\.mkv: variable frame rate: its 4 frames span 0\.90 s; stored at a constant 25 fps "
      r"they span 0\.12 s"], (4, H, W), None),
    ("vfr-mp4", lambda t: [make(t / "a.mp4", pts_ms=[0, 100, 500, 900])], "encode", 0,
     [r"warning: a\.mp4: variable frame rate: its 4 frames span 0\.90 s; stored at a constant "
      r"[\d.]+ fps they span 0\.\d\d s"], (4, H, W), None),
    ("mp4-cut-in-half", lambda t: [cut_in_half(make(t / "a.mp4", **CUT))],
     "encode", 1, [r"error: .*a\.mp4: the file ends early: read 11 of 24 frames .*--frames 0:11"], None, None),
    ("mp4-cut-in-half-frames-within", lambda t: [
        cut_in_half(make(t / "a.mp4", **CUT)), "--frames", "0:11"],
     "encode", 0, [], (11, H, W), None),
    ("mkv-cut-in-half", lambda t: [cut_in_half(make(t / "a.mkv", n=24, noise=True))], "encode", 1,
     [r"error: .*a\.mkv: the file ends early: read 11 of about 24 frames"], None, None),
    ("10-bit", lambda t: [make(t / "a.mkv", codec="ffv1", pix_fmt="yuv420p10le")], "encode", 0,
     [r"note: a\.mkv: 10-bit input stored as 8-bit"], (4, H, W), None),
    ("alpha", lambda t: [make(t / "a.mkv", codec="ffv1", pix_fmt="yuva420p")], "encode", 0,
     [r"note: a\.mkv: alpha channel dropped"], (4, H, W), None),
    ("png-rgba", lambda t: [png_folder(t / "pngs", "rgba")], "encode", 0,
     [r"note: f1\.png: alpha channel dropped"], (4, H, W), None),
    ("png-16-bit", lambda t: [png_folder(t / "pngs", "rgb48be")], "encode", 0,
     [r"note: f1\.png: 16-bit input stored as 8-bit"], (4, H, W), None),
    ("hdr-hlg", lambda t: [make(t / "a.mp4", ctx={**HDR, "color_trc": 18})], "encode", 0,
     [r"note: a\.mp4: HDR input \(HLG, BT\.2020\) coded as BT\.601 SDR without tone mapping"], (4, H, W), None),
    ("hdr-pq", lambda t: [make(t / "a.mkv", ctx={**HDR, "color_trc": 16})], "encode", 0,
     [r"note: a\.mkv: HDR input \(PQ, BT\.2020\) coded as BT\.601 SDR"], (4, H, W), None),
    ("wide-gamut-sdr", lambda t: [make(t / "a.mp4", ctx={**HDR, "color_trc": 1})], "encode", 0,
     [r"note: a\.mp4: BT\.2020 colour coded as BT\.601 SDR without gamut mapping"], (4, H, W), None),
    ("anamorphic-sar", lambda t: [make(t / "a.mp4", ctx={"sample_aspect_ratio": Fraction(4, 3)})], "encode", 0,
     [r"note: a\.mp4: sample aspect ratio 4:3 dropped: the 64x48 frames are meant to show as 85x48"],
     (4, H, W), None),
    ("audio", lambda t: [make(t / "a.mkv", codec="ffv1", audio="pcm_s16le")], "encode", 0,
     [r"note: a\.mkv: 1 audio stream not stored"], (4, H, W), None),
    ("all-at-once", lambda t: [make(t / "a.mp4", pix_fmt="yuv420p10le", audio="aac",
                                    ctx={"sample_aspect_ratio": Fraction(4, 3)})], "encode", 0,
     [r"note: a\.mp4: 10-bit", r"note: a\.mp4: sample aspect ratio 4:3", r"note: a\.mp4: 1 audio stream"],
     (4, H, W), None),
    ("odd-size-mp4-output", lambda t: [odd_nerv(t), t / "out.mp4"], "decode", 0,
     [r"note: .*out\.mp4: 23x17 written as 24x18 \(last column/row repeated\)"], (2, 18, 24), None),
    ("odd-size-mkv-output", lambda t: [odd_nerv(t), t / "out.mkv"], "decode", 0, [], (2, 17, 23), None),
]


@pytest.mark.parametrize("make_args,command,status,lines,shape,orient", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_input_conversions_are_named(tmp_path, capsys, make_args, command, status, lines, shape, orient):
    args = [str(a) for a in make_args(tmp_path)]
    capsys.readouterr()  # what making the input printed
    if command == "encode":
        argv = ["encode", args[0], str(tmp_path / "out.nerv"), *args[1:], *ENC]
    else:
        argv = ["decode", *args, "--quiet", "--device", "cpu"]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == status, err
    said = [ln for ln in err.splitlines() if re.match(r"nervc: (note|warning|error):", ln)]
    assert len(said) == len(lines), said
    for want in lines:
        assert sum(bool(re.match(r"nervc: " + want, ln)) for ln in said) == 1, (want, said)
    assert not re.search(r"\b(note|warning|error):", out), out
    if shape is None:
        assert not (tmp_path / "out.nerv").exists()
        return
    video = read_video(args[1] if command == "decode" else args[0],
                       frames=slice(0, shape[0]) if "--frames" in args else None)
    assert video.frames.shape == (*shape, 3)
    if orient is not None:
        assert np.abs(video.frames[0].astype(int) - upright(orient)).mean() < 8
    if command == "decode" and args[1].endswith(".mp4"):
        with av.open(args[1]) as c:  # 4:2:0, what browsers play
            assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
