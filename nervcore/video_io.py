"""Video in and out through PyAV: every source becomes ``uint8 [N, H, W, 3]`` RGB frames.

Sources: anything FFmpeg demuxes (mp4, mkv, avi, Annex-B .264/.h265, .y4m), raw planar
YUV 4:2:0 (``.yuv``/``.i420``, size from ``--size`` or the file name) and folders of PNGs.
``read_video`` returns the whole selection as one array; ``open_video`` returns a
``VideoSource`` that knows its size, rate and frame count up front (containers are counted by
demuxing packets, raw YUV from the file length, PNG folders from the file list) and decodes
``chunks(n)`` of ``n`` frames on demand, so a long clip is never held in memory at once. Both
give the same pixels through the same conversion (PyAV ``to_ndarray(format="rgb24")``, then the
display matrix applied). What the conversion drops (bit depth, alpha, HDR tags, sample aspect
ratio, audio, variable timing) is in each source's ``notes`` (:mod:`nervcore.input_facts`); a
container that ends before its header says is refused.

Sinks, chosen by the output name: ``.mp4`` (H.264 4:2:0, visually lossless; an odd size is
padded to even, with a note), ``.mkv`` (FFV1, lossless), ``.y4m`` and a PNG folder. Every sink
writes to a temporary name and renames, so an interrupted write never leaves a partial file.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nervcore.atomic import atomic_output
from nervcore.errors import NervcError
from nervcore.input_facts import Message, Orientation, conversion_notes, orientation, timing_warning
from nervcore.messages import note

RAW_EXTS = {".yuv", ".i420", ".raw"}
IMAGE_EXTS = {".png"}
NAMED_SIZES = {"sqcif": (128, 96), "qcif": (176, 144), "cif": (352, 288), "4cif": (704, 576),
               "720p": (1280, 720), "1080p": (1920, 1080)}
MAX_DIM = 16384
HEADER_DURATION_FORMATS = ("matroska", "mov", "mp4", "avi")  # FFmpeg format names
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
    """Read ``path`` into RGB frames; ``frames`` selects a range without decoding past it.

    The whole selection is held in memory: for long inputs use :func:`open_video` and
    :meth:`VideoSource.chunks`, which yield the same pixels a bounded number of frames at a time.
    """
    return open_video(path, size=size, fps=fps, frames=frames).read()


# ---------------------------------------------------------------- streaming reading

class VideoSource:
    """An opened video whose frames are decoded on demand, a chunk at a time.

    ``width``, ``height``, ``fps`` and ``num_frames`` (of the selected range) are known when
    the source is opened, before any frame of the range is decoded. :meth:`chunks` can be
    called any number of times; each call starts again from the first selected frame.
    """

    path: str
    width: int
    height: int
    fps: Fraction
    num_frames: int
    notes: list[Message] | tuple = ()  # what reading loses or changes, one line each (input_facts)

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        """Consecutive ``uint8 [k, H, W, 3]`` RGB chunks of ``n`` frames (the last may be shorter).

        Only the frames of the current chunk (plus the decoder's own few reference frames) are
        in memory at any time. The frames are exactly those :func:`read_video` returns.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"chunk size must be a positive int, got {n!r}")
        buf: list[np.ndarray] = []
        count = 0
        for frame in self._frames():
            if count == self.num_frames:  # only reached when the range runs to the end
                raise NervcError(f"{self.path}: the stream holds more frames than the "
                                 f"{self.num_frames} its packets announced; not supported")
            if frame.shape != (self.height, self.width, 3):
                raise NervcError(f"{self.path}: frame size changes mid-stream "
                                 f"({self.width}x{self.height} then {frame.shape[1]}x{frame.shape[0]}); "
                                 "not supported")
            buf.append(frame)
            count += 1
            if len(buf) == n:
                yield _stack(buf)
                buf = []
            if count == self.num_frames and not self._to_end:
                break  # never decode past the selected range
        if buf:
            yield _stack(buf)
        if count != self.num_frames:
            raise NervcError(f"{self.path}: decoded {count} frames where the file announced "
                             f"{self.num_frames}; the stream is damaged or unsupported")

    def read(self) -> Video:
        """Every selected frame in one array (what :func:`read_video` returns)."""
        out = np.empty((self.num_frames, self.height, self.width, 3), np.uint8)
        i = 0
        for c in self.chunks(64):
            out[i:i + len(c)] = c
            i += len(c)
        return Video(out, self.fps)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * 3

    _to_end = False  # True when the selection runs to the end of a counted (not exact) stream

    def _frames(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path!r}, {self.width}x{self.height}, "
                f"{self.num_frames} frames @ {self.fps} fps)")


def _stack(frames: list[np.ndarray]) -> np.ndarray:
    return np.stack(frames) if len(frames) > 1 else frames[0][None]


def open_video(path: str | os.PathLike, size: tuple[int, int] | None = None,
               fps: Fraction | None = None, frames: slice | None = None) -> VideoSource:
    """Open ``path`` for streaming: dimensions, rate and frame count, no frames decoded yet.

    ``size`` is the raw YUV frame size, ``fps`` overrides the stored rate, ``frames`` selects a
    range (a step-1 slice with non-negative ends, as :func:`parse_frame_range` makes). Counting
    the frames of a container demuxes its packets without decoding them; a raw YUV file is
    counted from its length and a PNG folder from its file list.
    """
    if str(path) == PIPE:
        return _PipeSource(sys.stdin.buffer, fps, frames)
    p = Path(path)
    if not p.exists():
        raise NervcError(f"{p}: no such file or directory")
    sel = frames or slice(0, None)
    if (sel.start or 0) < 0 or (sel.stop is not None and sel.stop < 0) or sel.step not in (None, 1):
        raise NervcError(f"bad frame range {sel}: expected non-negative ends and step 1")
    sel = slice(sel.start or 0, sel.stop)
    if p.is_dir():
        src: VideoSource = _PngDirSource(p, fps, sel)
    elif p.suffix.lower() in RAW_EXTS:
        src = _RawYuvSource(p, size, fps, sel)
    else:
        if p.stat().st_size == 0:
            raise NervcError(f"{p}: empty file")
        src = _ContainerSource(p, fps, sel)
    if src.num_frames == 0:
        what = "no frames in the selected range" if frames else "no video frames"
        raise NervcError(f"{p}: {what}")
    return src


class ArraySource(VideoSource):
    """A :class:`Video` already in memory behind the :class:`VideoSource` interface."""

    def __init__(self, video: Video, name: str = "<memory>") -> None:
        if video.frames.ndim != 4 or video.frames.shape[-1] != 3 or video.frames.dtype != np.uint8:
            raise NervcError(f"{name}: frames must be uint8 [N, H, W, 3]")
        self.video = video
        self.path = name
        self.width, self.height = video.width, video.height
        self.fps = video.fps
        self.num_frames = video.num_frames

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"chunk size must be a positive int, got {n!r}")
        for i in range(0, self.num_frames, n):
            yield self.video.frames[i:i + n]

    def read(self) -> Video:
        return self.video


def as_source(source: str | os.PathLike | Video | VideoSource, size: tuple[int, int] | None = None,
              fps: Fraction | None = None, frames: slice | None = None) -> VideoSource:
    """A path, a decoded :class:`Video` or a source -> a :class:`VideoSource` (what encoders take).

    ``size``, ``fps`` and ``frames`` apply to paths only.
    """
    if isinstance(source, VideoSource):
        return source
    if isinstance(source, Video):
        return ArraySource(source)
    return open_video(source, size=size, fps=fps, frames=frames)


def _range_len(total: int, sel: slice) -> int:
    return len(range(total)[sel])


class _ContainerSource(VideoSource):
    """Anything FFmpeg demuxes; frames are decoded by PyAV as the chunks are consumed.

    Opening it demuxes every packet once (no decoding): the frame count, the timestamps (for
    the variable-frame-rate warning) and whether the file ends before its header says it does.
    A file that ends early is refused unless ``--frames`` stays within what it holds.
    """

    def __init__(self, p: Path, fps: Fraction | None, sel: slice) -> None:
        self.path, self.sel = str(p), sel
        self._orient, self._skip_corrupt = Orientation(), False
        with self._open() as container:
            stream = self._stream(container)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            own = tidy_rate(Fraction(rate.numerator, rate.denominator)) if rate else DEFAULT_FPS
            self.fps = fps or own
            scan = _scan_packets(container, stream)
            announced = _announced_frames(container, stream, scan, own)
            time_base, audio = stream.time_base, len(container.streams.audio)
            sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        total = scan.count
        if announced is not None:  # decode what is there, the partial last packet left out
            self._skip_corrupt = True
            total = self._count_by_decoding()
            count, about = announced
            if total < count and (sel.stop is None or sel.stop > total):
                what = f"--frames 0:{total} encodes what is there" if total else "no frame decodes"
                raise NervcError(f"{p}: the file ends early: read {total} of {'about ' * about}{count} "
                                 f"frames (cut short, or still being written); {what}")
        elif not scan.certain:
            total = self._count_by_decoding()
        self.total_frames = total
        self.num_frames = _range_len(total, sel)
        self._to_end = sel.stop is None or sel.stop >= total
        self.width = self.height = 0
        self.notes = []
        if self.num_frames:
            frames = self._av_frames()
            first = next(frames, None)
            frames.close()
            if first is None:
                raise NervcError(f"{p}: no video frames")
            self._orient, self.notes = orientation(first, p.name)
            turned = self._orient.transpose  # 90° or 270°: width and height swap
            self.width, self.height = (first.height, first.width) if turned else (first.width, first.height)
            self.notes += conversion_notes(p.name, first, sar, audio)
            if fps is None and scan.certain and announced is None:  # --fps: the user chose the rate
                pts = sorted(scan.pts)[sel] if scan.pts else None
                self.notes += timing_warning(p.name, pts, time_base, own)

    def _open(self):
        try:
            return av.open(self.path)
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
            raise NervcError(f"{self.path}: not a readable video ({_short(e)})") from None

    def _stream(self, container):
        streams = container.streams.video
        if not streams:
            raise NervcError(f"{self.path}: contains no video stream")
        return streams[0]

    def _av_frames(self) -> Iterator:
        """Every frame of the stream as PyAV decodes it, in decode output order (the order
        read_video always used); a file that ends early loses its partial last packet."""
        with self._open() as container:
            stream = self._stream(container)
            stream.thread_type = "AUTO"
            try:
                for packet in container.demux(stream):
                    if self._skip_corrupt and packet.is_corrupt:
                        continue
                    yield from packet.decode()
            except (av.error.FFmpegError, ValueError) as e:
                raise NervcError(f"{self.path}: cannot decode video ({_short(e)})") from None

    def _count_by_decoding(self) -> int:
        return sum(1 for _ in self._av_frames())

    def _frames(self) -> Iterator[np.ndarray]:
        for i, f in enumerate(self._av_frames()):
            if i >= self.sel.start:
                rgb = f.to_ndarray(format="rgb24")
                yield rgb if self._orient.identity else np.ascontiguousarray(self._orient.apply(rgb))


class _PipeSource(VideoSource):
    """y4m on a pipe (``-``: standard input), as ``ffmpeg -f yuv4mpegpipe -`` writes it.

    Streamed and read once: its length is unknown until it ends (``num_frames`` is None, which
    the encoder handles by rewriting the header's counts at the end)."""

    def __init__(self, stream, fps: Fraction | None, sel: slice | None) -> None:
        if sel is not None and (sel.start or sel.stop is not None):
            raise NervcError("-: --frames cannot select from a pipe; cut the input before the pipe")
        self.path = "-"
        try:
            self._container = av.open(stream, mode="r", format="yuv4mpegpipe")
            self._stream = self._container.streams.video[0]
            self._iter = self._container.decode(self._stream)
            first = next(self._iter, None)
        except (av.error.FFmpegError, ValueError, IndexError) as e:
            raise NervcError(f"-: standard input is not a y4m stream ({_short(e)}); pipe y4m, e.g. "
                             "ffmpeg -i in.mkv -f yuv4mpegpipe - | nervc encode - out.nerv") from None
        if first is None:
            raise NervcError("-: no video frames on standard input")
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = fps or (tidy_rate(Fraction(rate.numerator, rate.denominator)) if rate else DEFAULT_FPS)
        self._first = first.to_ndarray(format="rgb24")
        self.height, self.width = self._first.shape[:2]
        self.notes = conversion_notes("-", first, self._stream.sample_aspect_ratio)
        self.num_frames = None
        self._used = False

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        if self._used:
            raise NervcError("-: a pipe can be read only once; encode one rung (one coded size) per call")
        self._used = True
        buf = [self._first]
        try:
            for frame in self._iter:
                buf.append(frame.to_ndarray(format="rgb24"))
                if buf[-1].shape != (self.height, self.width, 3):
                    raise NervcError("-: frame size changes mid-stream; not supported")
                if len(buf) == n:
                    yield _stack(buf)
                    buf = []
        except (av.error.FFmpegError, ValueError) as e:
            raise NervcError(f"-: cannot decode the y4m stream ({_short(e)})") from None
        if buf:
            yield _stack(buf)
        self._container.close()

    def read(self) -> Video:
        return Video(np.concatenate(list(self.chunks(64))), self.fps)


@dataclass
class _PacketScan:
    count: int  # frames: non-empty packets not flagged for discarding
    certain: bool  # False when decoders may drop some of them (corrupt, no keyframe first)
    pts: list[int] | None  # the counted packets' timestamps (None if any has none)
    present: int  # every packet the file holds (empty and discarded ones too)
    corrupt_tail: bool  # the last packet is flagged corrupt (cut short)


def _scan_packets(container, stream) -> _PacketScan:
    """Frames in ``stream`` from its packets, without decoding.

    Each non-empty packet not flagged for discarding (edit lists) is one frame. The count is
    not trusted (``certain`` False) when a packet is flagged corrupt or the stream does not
    start on a keyframe, since decoders may drop such frames; the caller then counts by decoding.
    """
    count, certain, first, present, tail = 0, True, True, 0, False
    pts: list[int] | None = []
    try:
        for pkt in container.demux(stream):
            if pkt.size or pkt.pts is not None:  # not PyAV's final flush packet
                present += 1
                tail = pkt.is_corrupt
            if not pkt.size or pkt.is_discard:
                continue
            if (first and not pkt.is_keyframe) or pkt.is_corrupt:
                certain = False
            first = False
            count += 1
            if pkt.pts is None:
                pts = None
            elif pts is not None:
                pts.append(pkt.pts)
    except (av.error.FFmpegError, ValueError):
        certain = False
    return _PacketScan(count, certain, pts, present, tail)


def _announced_frames(container, stream, scan: _PacketScan, fps: Fraction) -> tuple[int, bool] | None:
    """``(frames, estimated)``: how many frames the file says it has, when it holds fewer (it
    ends early), else None.

    Judged by time, in containers whose header states a duration (Matroska/WebM, MP4/MOV,
    AVI): the packets end more than 3 frames or 5 % before the stream's duration (a
    container's duration when it has one stream only, since that is its longest stream's).
    MP4/MOV also state their sample count: a file cut short holds fewer samples than that (or
    ends in a partial one, flagged corrupt), and the count is what the message names. A file
    trimmed by an edit list holds fewer samples too, but is not short of its duration.
    """
    if not any(n in container.format.name for n in HEADER_DURATION_FORMATS):
        return None  # a duration guessed from the bit rate (MPEG-TS, raw streams) proves nothing
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration and len(container.streams) == 1:
        duration = container.duration / 1e6
    else:
        duration = None
    short = False
    if duration and scan.pts and stream.time_base is not None:
        held = (max(scan.pts) - min(scan.pts)) * float(stream.time_base) + 1 / float(fps)
        short = duration - held > max(3 / float(fps), 0.05 * duration)
    if ("mp4" in container.format.name or "mov" in container.format.name) and stream.frames:
        cut = scan.corrupt_tail or (scan.present < stream.frames and short)
        return (stream.frames, False) if cut else None
    return (round(duration * float(fps)), True) if short else None


class _RawYuvSource(VideoSource):
    """Raw planar YUV 4:2:0 with no header: size from ``--size`` or the file name."""

    def __init__(self, p: Path, size: tuple[int, int] | None, fps: Fraction | None, sel: slice) -> None:
        wh = size or _size_from_name(p)
        if wh is None:
            raise NervcError(f"{p}: raw YUV needs --size WxH (none given, none in the file name)")
        w, h = wh
        if w % 2 or h % 2:
            raise NervcError(f"{p}: raw YUV 4:2:0 needs even width and height, got {w}x{h}")
        self.yuv_bytes = w * h * 3 // 2
        total = p.stat().st_size
        if total == 0:
            raise NervcError(f"{p}: empty file")
        if total % self.yuv_bytes:
            raise NervcError(f"{p}: size {total} bytes is not a whole number of {w}x{h} YUV 4:2:0 "
                             f"frames ({self.yuv_bytes} bytes each); check --size")
        self.path, self.width, self.height = str(p), w, h
        self.fps = fps or DEFAULT_FPS
        self.total_frames = total // self.yuv_bytes
        self.indices = range(self.total_frames)[sel]
        self.num_frames = len(self.indices)

    def _frames(self) -> Iterator[np.ndarray]:
        w, h = self.width, self.height
        with open(self.path, "rb") as f:
            for i in self.indices:
                f.seek(i * self.yuv_bytes)
                data = f.read(self.yuv_bytes)
                if len(data) != self.yuv_bytes:
                    raise NervcError(f"{self.path}: file shrank while reading")
                buf = np.frombuffer(data, np.uint8).reshape(h * 3 // 2, w)
                yield av.VideoFrame.from_ndarray(buf, format="yuv420p").to_ndarray(format="rgb24")


class _PngDirSource(VideoSource):
    """A folder of PNG frames in file-name order."""

    def __init__(self, p: Path, fps: Fraction | None, sel: slice) -> None:
        files = sorted((f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS), key=natural_key)
        if not files:
            raise NervcError(f"{p}: directory holds no .png frames")
        self.path = str(p)
        self.fps = fps or DEFAULT_FPS
        self.total_frames = len(files)
        self.files = files[sel]
        self.num_frames = len(self.files)
        self.width = self.height = 0
        if self.files:
            first = _png_frame(self.files[0])
            self.height, self.width = first.height, first.width
            self.notes = conversion_notes(self.files[0].name, first)

    def _frames(self) -> Iterator[np.ndarray]:
        for f in self.files:
            a = _read_png(f)
            if a.shape[:2] != (self.height, self.width):
                raise NervcError(f"{self.path}: PNG frames differ in size")
            yield a


def natural_key(f: Path) -> list:
    """Sort key reading digit runs as numbers: frame2 before frame10, as a person numbers them."""
    return [(0, int(t), t) if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", f.name) if t]


def _read_png(f: Path) -> np.ndarray:
    return _png_frame(f).to_ndarray(format="rgb24")


def _png_frame(f: Path):
    try:
        with av.open(str(f)) as c:
            return next(c.decode(video=0))
    except (av.error.FFmpegError, StopIteration) as e:
        raise NervcError(f"{f}: not a readable PNG ({_short(e)})") from None


def _size_from_name(p: Path) -> tuple[int, int] | None:
    m = re.search(r"(\d+)x(\d+)", p.name)
    if m:
        return int(m.group(1)), int(m.group(2))
    for token in re.split(r"[^a-z0-9]+", p.name.lower()):
        if token in NAMED_SIZES:
            return NAMED_SIZES[token]
    return None


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


# ---------------------------------------------------------------- writing

PIPE = "-"  # an input or output named "-" is standard input / output, in y4m


def output_kind(path: str | os.PathLike) -> str:
    """'mp4' | 'mkv' | 'y4m' | 'png' (a folder) from the output name; '-' is y4m on stdout."""
    if str(path) == PIPE:
        return "y4m"
    p = Path(path)
    ext = p.suffix.lower()
    if ext in (".mp4", ".mkv", ".y4m"):
        return ext[1:]
    if ext == "" or str(path).endswith(os.sep) or p.is_dir():
        return "png"
    raise NervcError(f"{p}: unknown output type {ext!r}; use .mp4, .mkv, .y4m or a folder name")


FRAME_FILE = re.compile(r"f\d{5,}\.png")
"""The names of the frame files nervc writes into a PNG folder (and may replace with ``-y``)."""


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` are one file (also through links); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | os.PathLike, overwrite: bool, *, folder: bool = False,
                 inputs: Iterable = ()) -> Path:
    """Fail early (before any work) if ``path`` cannot or must not be written.

    ``-y`` (``overwrite``) replaces exactly the file named: never an input (``inputs``, also
    through links), never a folder, device or anything but a regular file. A ``folder`` output
    (PNG frames) may replace only a folder holding nothing but nervc's own frame files.
    """
    p = Path(path)
    if str(path) == PIPE:
        return p
    for src in inputs:
        if isinstance(src, (str, os.PathLike)) and same_file(src, p):
            raise NervcError(f"{p}: is the input; write the output under another name")
    if p.exists() or p.is_symlink():
        if not overwrite:
            raise NervcError(f"{p}: already exists (use -y to overwrite)")
        if folder:
            _check_replaceable_folder(p)
        elif p.is_dir():
            raise NervcError(f"{p}: is a directory; -y replaces only a file")
        elif p.exists() and not p.is_file():
            raise NervcError(f"{p}: is not a regular file; -y replaces only a file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise NervcError(f"{p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise NervcError(f"{p}: directory {parent} is not writable")
    return p


def _check_replaceable_folder(p: Path) -> None:
    """A PNG-folder output may replace only a folder of nervc's frames, never the one we are in."""
    if p.is_symlink() or not p.is_dir():
        raise NervcError(f"{p}: exists and is not a folder; a frame-folder output replaces only a "
                         "folder of nervc's frames")
    here = os.path.abspath(os.getcwd())
    target = os.path.abspath(p)
    if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
        raise NervcError(f"{p}: is the current folder (or holds it); name a new folder for the frames")
    foreign = [e.name for e in p.iterdir() if e.is_symlink() or not e.is_file()
               or not FRAME_FILE.fullmatch(e.name)]
    if foreign:
        raise NervcError(f"{p}: folder holds files nervc did not write ({foreign[0]}"
                         f"{', ...' if len(foreign) > 1 else ''}); name a new or empty folder for the frames")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: Fraction,
                width: int, height: int, overwrite: bool = False) -> None:
    """Write RGB uint8 frames (an iterable of ``[H, W, 3]``) atomically."""
    kind = output_kind(path)
    if str(path) == PIPE:  # y4m on standard output: streamed, nothing to make atomic
        out = _StdoutPipe(sys.stdout.buffer)
        try:
            _encode_container(out, kind, frames, fps, width, height)
            out.flush()
        except Exception:
            if out.broken:  # PyAV wraps the writer's BrokenPipeError in its own error
                raise BrokenPipeError("the reader of standard output closed it") from None
            raise
        return
    p = check_output(path, overwrite, folder=kind == "png")
    if kind == "mp4" and (width % 2 or height % 2):
        even_w, even_h = width + width % 2, height + height % 2
        note(f"{p}: {width}x{height} written as {even_w}x{even_h} (last column/row repeated): the "
             f"H.264 4:2:0 that browsers and phones play needs even sizes; .mkv, .y4m and PNG keep "
             f"{width}x{height}")
        frames = (_pad_even(f) for f in frames)
        width, height = even_w, even_h
    if kind == "png":
        with atomic_output(p, directory=True, own_files=FRAME_FILE) as tmp:
            for i, f in enumerate(frames):
                _write_png(tmp / f"f{i + 1:05d}.png", f)
        return
    with atomic_output(p) as tmp:
        _encode_container(str(tmp), kind, frames, fps, width, height)


class _StdoutPipe:
    """Standard output for PyAV's writer, remembering whether its reader went away."""

    def __init__(self, f) -> None:
        self.f, self.broken = f, False

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except BrokenPipeError:
            self.broken = True
            raise

    def flush(self) -> None:
        try:
            self.f.flush()
        except BrokenPipeError:
            self.broken = True
            raise


def write_side_by_side(path: str | os.PathLike, source: np.ndarray, decoded: np.ndarray) -> None:
    """One PNG, ``source | decoded`` (a 4-pixel white gap), each at 2x with nearest pixels: what a
    person compares when judging a codec."""
    gap = np.full((source.shape[0], 4, 3), 255, np.uint8)
    both = np.concatenate([source, gap, decoded], axis=1).repeat(2, axis=0).repeat(2, axis=1)
    with atomic_output(path, suffix=".png") as tmp:
        _write_png(tmp, both)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream("png")
        s.width, s.height, s.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
        for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
            c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _pad_even(rgb: np.ndarray) -> np.ndarray:
    """Repeat the last column / row of an odd-sized ``[H, W, 3]`` frame to make it even."""
    return np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")


def _encode_container(name, kind: str, frames: Iterable[np.ndarray], fps: Fraction,
                      width: int, height: int) -> None:
    even = width % 2 == 0 and height % 2 == 0
    if kind == "mp4":  # write_video pads odd sizes: 4:2:0, what every player plays
        codec, pix_fmt, opts = "libx264", "yuv420p", {"crf": "10", "preset": "medium"}
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
