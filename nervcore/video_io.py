"""Video in and out through PyAV: every source becomes ``uint8 [N, H, W, 3]`` RGB frames.

Sources: anything FFmpeg demuxes (mp4, mkv, avi, Annex-B .264/.h265, .y4m), raw planar
YUV 4:2:0 (``.yuv``/``.i420``, size from ``--size`` or the file name) and folders of PNGs.
Sinks, chosen by the output name: ``.mp4`` (H.264, visually lossless), ``.mkv`` (FFV1,
lossless), ``.y4m`` and a PNG folder. Every sink writes to a temporary name and renames, so an
interrupted write never leaves a partial file.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nervcore.atomic import atomic_output
from nervcore.errors import NervcError

RAW_EXTS = {".yuv", ".i420", ".raw"}
IMAGE_EXTS = {".png"}
NAMED_SIZES = {"sqcif": (128, 96), "qcif": (176, 144), "cif": (352, 288), "4cif": (704, 576),
               "720p": (1280, 720), "1080p": (1920, 1080)}
MAX_DIM = 16384
DEFAULT_FPS = Fraction(25)
AVCOL_SPC_SMPTE170M = 6  # FFmpeg's AVColorSpace for the BT.601 matrix (525-line flavour)
AVCOL_RANGE_MPEG = 1  # limited range: Y in 16..235, Cb/Cr in 16..240

# No av.logging.set_level(): it installs a Python log callback that takes the GIL from
# FFmpeg worker threads and can deadlock threaded decoding. PyAV is silent by default.


@dataclass
class Video:
    """Decoded frames plus the timing needed to write them back."""

    frames: np.ndarray  # uint8 [N, H, W, 3] RGB
    fps: Fraction

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


def parse_frame_range(spec: str | None) -> slice | None:
    """``"a:b"`` (Python slice semantics, either end optional) or ``"a"`` (one frame)."""
    if spec is None or spec == "":
        return None
    m = re.fullmatch(r"\s*(\d*)\s*(?::\s*(\d*)\s*)?", spec)
    if not m:
        raise NervcError(f"bad frame range {spec!r}: expected a:b, a: or :b with non-negative integers")
    a = int(m.group(1)) if m.group(1) else 0
    if ":" not in spec:
        return slice(a, a + 1)
    b = int(m.group(2)) if m.group(2) else None
    if b is not None and b <= a:
        raise NervcError(f"bad frame range {spec!r}: end must be greater than start")
    return slice(a, b)


def tidy_rate(rate: Fraction) -> Fraction:
    """Snap a timestamp-derived rate (1000000/66667 for 15 fps AVI) to a simple rational.

    Rates with denominators up to 1001 (NTSC 30000/1001 included) are kept exactly.
    """
    if rate.denominator <= 1001:
        return rate
    simple = rate.limit_denominator(100)
    return simple if abs(simple - rate) / rate < 1e-4 else rate.limit_denominator(1_000_000)


def parse_size(spec: str | None) -> tuple[int, int] | None:
    """``"WxH"`` -> (W, H)."""
    if spec is None:
        return None
    m = re.fullmatch(r"(\d+)[xX](\d+)", spec.strip())
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise NervcError(f"bad size {spec!r}: expected WxH, e.g. 176x144")
    w, h = int(m.group(1)), int(m.group(2))
    if w > MAX_DIM or h > MAX_DIM:
        raise NervcError(f"size {w}x{h} exceeds the {MAX_DIM}-pixel limit")
    return w, h


def parse_fps(spec: str | Fraction | float | None) -> Fraction | None:
    """``"30000/1001"``, ``"29.97"`` or ``"25"`` -> Fraction."""
    if spec is None:
        return None
    try:
        fps = Fraction(str(spec)).limit_denominator(1_000_000)
    except (ValueError, ZeroDivisionError):
        raise NervcError(f"bad frame rate {spec!r}: expected e.g. 25, 29.97 or 30000/1001") from None
    if fps <= 0 or fps > 1000:
        raise NervcError(f"frame rate {spec!r} out of range (0, 1000]")
    return fps


def read_video(path: str | os.PathLike, size: tuple[int, int] | None = None,
               fps: Fraction | None = None, frames: slice | None = None) -> Video:
    """Read ``path`` into RGB frames; ``frames`` selects a range without decoding past it."""
    p = Path(path)
    if not p.exists():
        raise NervcError(f"{p}: no such file or directory")
    sel = frames or slice(0, None)
    if p.is_dir():
        video = _read_png_dir(p, fps, sel)
    elif p.suffix.lower() in RAW_EXTS:
        video = _read_raw_yuv(p, size, fps, sel)
    else:
        if p.stat().st_size == 0:
            raise NervcError(f"{p}: empty file")
        video = _read_with_pyav(p, fps, sel)
    if video.num_frames == 0:
        what = "no frames in the selected range" if frames else "no video frames"
        raise NervcError(f"{p}: {what}")
    return video


def _take(it: Iterable[np.ndarray], sel: slice) -> list[np.ndarray]:
    out = []
    for i, f in enumerate(it):
        if sel.stop is not None and i >= sel.stop:
            break
        if i >= sel.start:
            out.append(f)
    return out


def _read_with_pyav(p: Path, fps: Fraction | None, sel: slice) -> Video:
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise NervcError(f"{p}: not a readable video ({_short(e)})") from None
    with container:
        streams = container.streams.video
        if not streams:
            raise NervcError(f"{p}: contains no video stream")
        stream = streams[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        out_fps = fps or (tidy_rate(Fraction(rate.numerator, rate.denominator)) if rate else DEFAULT_FPS)

        def gen() -> Iterator[np.ndarray]:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")

        try:
            arrays = _take(gen(), sel)
        except (av.error.FFmpegError, ValueError) as e:
            if not arrays_partial_ok(e):
                raise NervcError(f"{p}: cannot decode video ({_short(e)})") from None
            arrays = []
    if not arrays:
        return Video(np.zeros((0, 1, 1, 3), np.uint8), out_fps)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise NervcError(f"{p}: frame size changes mid-stream ({sorted(shapes)}); not supported")
    return Video(np.stack(arrays), out_fps)


def arrays_partial_ok(e: Exception) -> bool:
    """Decoding errors are fatal: a half-read video must not be silently encoded."""
    return False


def _size_from_name(p: Path) -> tuple[int, int] | None:
    m = re.search(r"(\d+)x(\d+)", p.name)
    if m:
        return int(m.group(1)), int(m.group(2))
    for token in re.split(r"[^a-z0-9]+", p.name.lower()):
        if token in NAMED_SIZES:
            return NAMED_SIZES[token]
    return None


def _read_raw_yuv(p: Path, size: tuple[int, int] | None, fps: Fraction | None, sel: slice) -> Video:
    wh = size or _size_from_name(p)
    if wh is None:
        raise NervcError(f"{p}: raw YUV needs --size WxH (none given, none in the file name)")
    w, h = wh
    if w % 2 or h % 2:
        raise NervcError(f"{p}: raw YUV 4:2:0 needs even width and height, got {w}x{h}")
    frame_bytes = w * h * 3 // 2
    total = p.stat().st_size
    if total == 0:
        raise NervcError(f"{p}: empty file")
    if total % frame_bytes:
        raise NervcError(f"{p}: size {total} bytes is not a whole number of {w}x{h} YUV 4:2:0 "
                         f"frames ({frame_bytes} bytes each); check --size")
    n = total // frame_bytes
    idx = range(n)[sel]
    arrays = []
    with open(p, "rb") as f:
        for i in idx:
            f.seek(i * frame_bytes)
            buf = np.frombuffer(f.read(frame_bytes), np.uint8).reshape(h * 3 // 2, w)
            frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
            arrays.append(frame.to_ndarray(format="rgb24"))
    frames = np.stack(arrays) if arrays else np.zeros((0, h, w, 3), np.uint8)
    return Video(frames, fps or DEFAULT_FPS)


def _read_png_dir(p: Path, fps: Fraction | None, sel: slice) -> Video:
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise NervcError(f"{p}: directory holds no .png frames")
    arrays = []
    for f in files[sel]:
        try:
            with av.open(str(f)) as c:
                arrays.append(next(c.decode(video=0)).to_ndarray(format="rgb24"))
        except (av.error.FFmpegError, StopIteration) as e:
            raise NervcError(f"{f}: not a readable PNG ({_short(e)})") from None
    if arrays and len({a.shape for a in arrays}) != 1:
        raise NervcError(f"{p}: PNG frames differ in size")
    frames = np.stack(arrays) if arrays else np.zeros((0, 1, 1, 3), np.uint8)
    return Video(frames, fps or DEFAULT_FPS)


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


# ---------------------------------------------------------------- writing

def output_kind(path: str | os.PathLike) -> str:
    """'mp4' | 'mkv' | 'y4m' | 'png' (a folder) from the output name."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext in (".mp4", ".mkv", ".y4m"):
        return ext[1:]
    if ext == "" or str(path).endswith(os.sep) or p.is_dir():
        return "png"
    raise NervcError(f"{p}: unknown output type {ext!r}; use .mp4, .mkv, .y4m or a folder name")


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early (before any work) if ``path`` cannot or must not be written."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise NervcError(f"{p}: already exists (use -y to overwrite)")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise NervcError(f"{p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise NervcError(f"{p}: directory {parent} is not writable")
    return p


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: Fraction,
                width: int, height: int, overwrite: bool = False) -> None:
    """Write RGB uint8 frames (an iterable of ``[H, W, 3]``) atomically."""
    p = check_output(path, overwrite)
    kind = output_kind(p)
    if kind == "png":
        with atomic_output(p, directory=True) as tmp:
            for i, f in enumerate(frames):
                _write_png(tmp / f"f{i + 1:05d}.png", f)
        return
    with atomic_output(p) as tmp:
        _encode_container(str(tmp), kind, frames, fps, width, height)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream("png")
        s.width, s.height, s.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
        for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
            c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _encode_container(name: str, kind: str, frames: Iterable[np.ndarray], fps: Fraction,
                      width: int, height: int) -> None:
    even = width % 2 == 0 and height % 2 == 0
    if kind == "mp4":
        codec, pix_fmt, opts = "libx264", ("yuv420p" if even else "yuv444p"), {"crf": "10", "preset": "medium"}
        fmt = "mp4"
    elif kind == "mkv":
        codec, pix_fmt, opts, fmt = "ffv1", "bgr0", {}, "matroska"
    else:
        codec, pix_fmt, opts, fmt = "rawvideo", ("yuv420p" if even else "yuv444p"), {}, "yuv4mpegpipe"
    # YUV outputs: BT.601 matrix, limited range, converted so explicitly and tagged so. x264
    # writes no colour tags unless a matrix is given (a range alone is dropped), and untagged
    # H.264 is shown with BT.709 by most players once the picture is HD: shifted colours.
    yuv = pix_fmt.startswith("yuv")
    with av.open(name, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=fps, options=opts)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        if yuv:
            s.codec_context.colorspace = AVCOL_SPC_SMPTE170M
            s.codec_context.color_range = AVCOL_RANGE_MPEG
        for f in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            if yuv:  # the frames carry the tags too: encoders take them from there
                vf = vf.reformat(format=pix_fmt, dst_colorspace="ITU601", dst_color_range="MPEG")
                vf.colorspace, vf.color_range = AVCOL_SPC_SMPTE170M, AVCOL_RANGE_MPEG
            else:
                vf = vf.reformat(format=pix_fmt)
            for pkt in s.encode(vf):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
