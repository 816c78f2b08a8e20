"""Meta-training tasks: clips cut at random from a folder of videos, in three kinds.

``down`` (the original kind): ``n`` consecutive frames (random start, random temporal stride),
a random crop at a random scale resized to a random small ``h x w`` (64-160 px sides by default,
multiples of the model's total stride, so the init sees many grid sizes and stays resolution
agnostic), optionally mirrored. Decoded videos are kept as downscaled ``uint8`` arrays in an LRU
cache bounded in bytes; decoding goes through ``nervcore.video_io.read_video`` in chunks so a
long HD clip never sits in memory at full size, and can be mirrored to a disk folder (plain
``.npy``, no pickle) so later runs skip decoding.

``native`` and ``crop`` are what the encoder actually fits: a GOP span of up to 120 consecutive
frames (``gops``) at the video's own resolution, of which the task holds ``n`` frames drawn at
random (the encoder fits a GOP with random batches of 8 of its frames); each frame's time is its
position in the span, ``(i - first) / (span - 1)``, exactly as the encoder normalises time within
a GOP. ``native`` is the whole frame, replicate-padded on the bottom/right to a multiple of the
stride as the encoder pads it (optionally reduced by an integer box filter when its longer side
exceeds ``native_max_side``); ``crop`` is a full-resolution window 256-832 px wide (multiples of
the stride) whose height is either in the frame's proportion or random within the frame. Their
frames come from ``NativeFrames``, an LRU of single decoded frames bounded in bytes, filled by
decoding just the span a task needs; tasks hold them as ``uint8`` (4x smaller than float).

Every kind is played backwards half the time and mirrored half the time (``flip``); with
``colour`` > 0 that share of tasks also gets its RGB channels in another order
(``nervc meta-train --colour-aug``), more varied tasks from a train set of 16 clips.

``mix`` weights the kinds, e.g. ``parse_task_mix("native:0.5,crop:0.3,down:0.2")``; with one
kind no random number is spent on choosing it, so ``down``-only runs draw the tasks they always did.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nervcore.atomic import atomic_output
from nervcore.errors import NervcError
from nervcore.video_io import IMAGE_EXTS, RAW_EXTS, read_video

_PERMUTATIONS = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))  # RGB orders but the identity
log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m", ".264", ".h264", ".265", ".h265",
              ".hevc", ".m4v", ".mpg", ".mpeg", ".ts"} | RAW_EXTS
DEFAULT_SIDES = (64, 80, 96, 112, 128, 144, 160)
TASK_KINDS = ("down", "native", "crop")
DEFAULT_CROP_WIDTHS = (256, 832)
DEFAULT_GOPS = (120,)  # the encoder's default GOP (codec/ladder.py DEFAULT_GOP)


def parse_task_mix(spec: str | dict | None) -> dict[str, float]:
    """``"native:0.5,crop:0.3,down:0.2"`` (a bare kind weighs 1) -> weights summing to 1.

    Kinds come back in ``TASK_KINDS`` order and kinds of weight 0 are dropped, so the same mix
    written in another order draws the same tasks.
    """
    if spec is None or spec == "":
        return {"down": 1.0}
    if isinstance(spec, dict):
        items = [(str(k), float(v)) for k, v in spec.items()]
    else:
        items = []
        for part in str(spec).split(","):
            if not part.strip():
                continue
            kind, sep, weight = part.partition(":")
            try:
                items.append((kind.strip(), float(weight) if sep else 1.0))
            except ValueError:
                raise ValueError(f"bad task mix entry {part!r}: expected KIND:WEIGHT") from None
    weights: dict[str, float] = {}
    for kind, w in items:
        if kind not in TASK_KINDS:
            raise ValueError(f"unknown task kind {kind!r}; kinds are {', '.join(TASK_KINDS)}")
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"task kind {kind} has weight {w}; weights must be finite and >= 0")
        weights[kind] = weights.get(kind, 0.0) + w
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"task mix {spec!r} has no kind of positive weight")
    return {k: weights[k] / total for k in TASK_KINDS if weights.get(k, 0.0) > 0}


def list_videos(folder: str | os.PathLike) -> list[Path]:
    """Video files and PNG-frame folders directly inside ``folder``, sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise NervcError(f"{root}: not a directory of videos")
    found = []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            if any(f.suffix.lower() in IMAGE_EXTS for f in p.iterdir()):
                found.append(p)
        elif p.suffix.lower() in VIDEO_EXTS:
            found.append(p)
    if not found:
        raise NervcError(f"{root}: no videos found")
    return found


def box_reduce(frames: np.ndarray, factor: int) -> np.ndarray:
    """Integer area (box) filter of ``uint8 [N,H,W,3]``: the rounded mean of each block.

    Rows and columns that do not fill a whole block are dropped (as a box-filtered source is
    usually prepared for coding).
    """
    if factor <= 1:
        return frames
    n, h, w, c = frames.shape
    h2, w2 = h // factor, w // factor
    blocks = frames[:, :h2 * factor, :w2 * factor].reshape(n, h2, factor, w2, factor, c)
    return np.floor(blocks.mean(axis=(2, 4), dtype=np.float64) + 0.5).astype(np.uint8)


def pad_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Replicate-pad ``[N,h,w,3]`` on the bottom/right to ``height x width`` (the encoder's padding)."""
    ph, pw = height - frames.shape[1], width - frames.shape[2]
    if ph <= 0 and pw <= 0:
        return frames
    return np.pad(frames, ((0, 0), (0, max(ph, 0)), (0, max(pw, 0)), (0, 0)), mode="edge")


def _downscale(frames: np.ndarray, short_side: int) -> np.ndarray:
    """Area-style (antialiased bilinear) downscale of ``uint8 [N,H,W,3]`` to a short side."""
    n, h, w, _ = frames.shape
    s = short_side / min(h, w)
    if s >= 1.0:
        return np.ascontiguousarray(frames)
    oh, ow = max(1, round(h * s)), max(1, round(w * s))
    out = np.empty((n, oh, ow, 3), np.uint8)
    for i in range(0, n, 16):
        x = torch.from_numpy(frames[i:i + 16]).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=(oh, ow), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + 16] = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


class FrameCache:
    """Decoded, downscaled videos (``uint8 [N,h,w,3]``) in an LRU bounded by ``max_bytes``.

    The most recent video is always kept even if it alone exceeds the budget. With ``disk_dir``
    each decoded video is also saved there as ``.npy`` keyed by the file's path, size, mtime and
    the cache settings, and loaded from there instead of decoding again.
    """

    def __init__(self, max_bytes: int, short_side: int = 256, max_frames: int = 240,
                 chunk: int = 128, disk_dir: str | os.PathLike | None = None) -> None:
        self.max_bytes = int(max_bytes)
        self.short_side = int(short_side)
        self.max_frames = int(max_frames)
        self.chunk = int(chunk)
        self.disk_dir = Path(disk_dir) if disk_dir else None
        self._items: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.decodes = 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, path: Path) -> bool:
        return Path(path) in self._items

    def get(self, path: str | os.PathLike) -> np.ndarray:
        p = Path(path)
        if p in self._items:
            self._items.move_to_end(p)
            return self._items[p]
        arr = self._load_or_decode(p)
        self._items[p] = arr
        while len(self._items) > 1 and self.nbytes > self.max_bytes:
            self._items.popitem(last=False)
        return arr

    def _disk_name(self, p: Path) -> Path | None:
        if self.disk_dir is None:
            return None
        st = p.stat()
        key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.short_side}|{self.max_frames}"
        return self.disk_dir / f"{p.stem}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"

    def _load_or_decode(self, p: Path) -> np.ndarray:
        disk = self._disk_name(p)
        if disk is not None and disk.is_file():
            try:
                arr = np.load(disk, allow_pickle=False)
                if arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[-1] == 3:
                    return arr
            except (OSError, ValueError):
                pass
        arr = self._decode(p)
        self.decodes += 1
        if disk is not None:
            disk.parent.mkdir(parents=True, exist_ok=True)
            try:
                with atomic_output(disk, suffix=".npy") as tmp, open(tmp, "wb") as f:
                    np.save(f, arr, allow_pickle=False)
            except OSError:
                pass  # the disk cache is an optimisation; decoding again is always correct
        return arr

    def _decode(self, p: Path) -> np.ndarray:
        parts: list[np.ndarray] = []
        start = 0
        while start < self.max_frames:
            stop = min(start + self.chunk, self.max_frames)
            try:
                v = read_video(p, frames=slice(start, stop))
            except NervcError:
                if start == 0:
                    raise
                break  # past the end
            parts.append(_downscale(v.frames, self.short_side))
            if v.num_frames < stop - start:
                break
            start = stop
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class NativeFrames:
    """Full-resolution frames, decoded on demand, in an LRU of single frames bounded in bytes.

    Only the first ``max_frames`` frames of a video are used. ``frames(path, idx, factor)``
    returns the frames ``idx`` (optionally box-reduced by ``factor``), decoding from the source
    only the span ``[min(missing), max(missing)]`` of those not cached; every decoded frame of
    that span is cached (a later task likely wants its neighbours) and the least recently used
    frames are dropped once ``max_bytes`` is exceeded. Peak memory is ``max_bytes`` plus one
    decoded span (at most a GOP of frames). ``info(path)`` gives the number of usable frames and
    the frame size, once per video: a video of ``P`` packets (a demux, no decoding) has
    ``min(max_frames, P - 8)`` usable frames (the margin covers packets that are no frame, e.g.
    box.mp4 has 456 packets and 455 frames) when that is at least ``decode_count_below``; shorter
    videos, raw YUV and PNG folders are counted by decoding them in ``chunk``-frame pieces
    (caching the frames as it goes). Counting a long HD video by decoding took 25-100 s on the
    busy 2-core machine, where the demux takes about a second.
    What a task contains never depends on what happens to be cached, so sampling stays
    deterministic.
    """

    def __init__(self, max_bytes: int, max_frames: int = 240, chunk: int = 120,
                 decode_count_below: int = 64) -> None:
        self.max_bytes = int(max_bytes)
        self.max_frames = int(max_frames)
        self.chunk = max(1, int(chunk))
        self.decode_count_below = int(decode_count_below)
        self._frames: OrderedDict[tuple[Path, int, int], np.ndarray] = OrderedDict()
        self._info: dict[Path, tuple[int, int, int]] = {}
        self.nbytes = 0
        self.decoded_frames = 0

    def __len__(self) -> int:
        return len(self._frames)

    def _put(self, key: tuple[Path, int, int], frame: np.ndarray) -> None:
        """Cache ``frame``, which must own its memory (a view would pin its whole decoded span
        outside the byte count)."""
        old = self._frames.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._frames[key] = frame
        self.nbytes += frame.nbytes
        while self._frames and self.nbytes > self.max_bytes:
            _, dropped = self._frames.popitem(last=False)
            self.nbytes -= dropped.nbytes

    def _decode(self, p: Path, start: int, stop: int) -> np.ndarray:
        frames = read_video(p, frames=slice(start, stop)).frames
        self.decoded_frames += frames.shape[0]
        return frames

    def info(self, path: str | os.PathLike) -> tuple[int, int, int]:
        """``(usable frames, height, width)`` of a video at its native resolution."""
        p = Path(path)
        if p in self._info:
            return self._info[p]
        packets = _count_packets(p)
        usable = None if packets is None else min(self.max_frames, packets - _PACKET_MARGIN)
        if usable is not None and usable >= min(self.decode_count_below, self.max_frames):
            first = self._decode(p, 0, 1)
            self._put((p, 1, 0), first[0].copy())
            self._info[p] = (usable, int(first.shape[1]), int(first.shape[2]))
            return self._info[p]
        total, hw = 0, (0, 0)
        while total < self.max_frames:
            start, stop = total, min(total + self.chunk, self.max_frames)
            try:
                part = self._decode(p, start, stop)
            except NervcError:
                if start == 0:
                    raise
                break  # past the end
            hw = part.shape[1:3]
            for j, f in enumerate(part):
                self._put((p, 1, start + j), f.copy())
            total = start + part.shape[0]
            if part.shape[0] < stop - start:
                break
        self._info[p] = (total, int(hw[0]), int(hw[1]))
        return self._info[p]

    def frames(self, path: str | os.PathLike, idx: np.ndarray, factor: int = 1) -> np.ndarray:
        """``uint8 [len(idx), H, W, 3]``: frames ``idx`` of ``path``, box-reduced by ``factor``."""
        p = Path(path)
        idx = [int(i) for i in idx]
        got: dict[int, np.ndarray] = {}
        for i in idx:
            f = self._frames.get((p, factor, i))
            if f is not None:
                self._frames.move_to_end((p, factor, i))
                got[i] = f
        missing = [i for i in idx if i not in got]
        if missing:
            lo, hi = min(missing), max(missing) + 1
            span = self._decode(p, lo, hi)
            if span.shape[0] < hi - lo:
                raise NervcError(f"{p}: frames {lo}..{hi - 1} asked for, the video ended at {lo + span.shape[0]}")
            span = box_reduce(span, factor)
            for j in range(span.shape[0]):
                frame = span[j].copy()  # a view would keep the whole span alive
                if lo + j in missing:
                    got[lo + j] = frame
                self._put((p, factor, lo + j), frame)
        return np.stack([got[i] for i in idx])


_PACKET_MARGIN = 8  # packets that may not be frames (e.g. a trailing one) before a count is trusted


def _count_packets(p: Path) -> int | None:
    """Video packets of a demuxable file (about one per frame), without decoding; None when the
    file is a folder, raw YUV or not demuxable (then frames are counted by decoding)."""
    if p.is_dir() or p.suffix.lower() in RAW_EXTS:
        return None
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError):
        return None


@dataclass
class Task:
    """``frames`` ``[n, 3, h, w]`` and their normalised times ``[n]``.

    ``frames`` are float in [0, 1] (``down`` tasks) or ``uint8`` (``native``/``crop`` tasks, 4x
    smaller at full resolution); ``pixels`` gives float in [0, 1] either way. ``span`` is the
    number of frames the times are normalised over (the GOP length for native/crop tasks).
    """

    frames: Tensor
    times: Tensor
    source: str
    kind: str = "down"
    span: int = 0

    @property
    def hw(self) -> tuple[int, int]:
        return (int(self.frames.shape[-2]), int(self.frames.shape[-1]))

    def pixels(self, idx: Tensor | None = None, device: torch.device | str | None = None) -> Tensor:
        """Frames ``idx`` (all by default) as float ``[k, 3, h, w]`` in [0, 1] on ``device``."""
        x = self.frames if idx is None else self.frames[idx]
        x = x.to(device) if device is not None else x
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class TaskSampler:
    """Draws tasks from every video of a folder; all randomness comes from the caller's ``rng``.

    ``sides`` are the allowed ``down`` task heights/widths (multiples of ``stride``);
    ``max_aspect`` bounds ``max(h, w) / min(h, w)`` of down tasks and of random-height crops;
    down crops are taken at a scale drawn log-uniformly between 1 (native pixels of the cached
    copy) and the largest that fits, so tasks mix detail and whole-scene views.

    ``mix`` (see ``parse_task_mix``) weights the kinds ``down``, ``native`` and ``crop``;
    ``crop_widths`` is the ``(min, max)`` width of crop tasks (the multiples of ``stride`` in
    that range, capped by the frame), ``gops`` the GOP lengths a native/crop span is drawn from
    (capped by the video), ``native_cache_mb`` the byte budget of the full-resolution frame LRU
    and ``native_max_side`` (None: no limit) the longest side of a native task, larger videos
    being reduced by the smallest integer box factor that fits.
    """

    def __init__(self, folder: str | os.PathLike, sides: tuple[int, ...] = DEFAULT_SIDES,
                 stride: int = 16, max_aspect: float = 2.0, cache_mb: float = 1024,
                 short_side: int = 256, max_frames: int = 240, max_temporal_stride: int = 2,
                 flip: bool = True, disk_cache: str | os.PathLike | None = None,
                 mix: str | dict | None = None, crop_widths: tuple[int, int] = DEFAULT_CROP_WIDTHS,
                 gops: tuple[int, ...] = DEFAULT_GOPS, native_cache_mb: float = 2048,
                 native_max_side: int | None = None, colour: float = 0.0) -> None:
        self.videos = list_videos(folder)
        self.stride = int(stride)
        self.mix = parse_task_mix(mix)
        bad = [s for s in sides if s <= 0 or s % stride]
        if bad or not sides:
            raise ValueError(f"task sides must be positive multiples of {stride}, got {sides}")
        self.sides = tuple(sorted(set(int(s) for s in sides)))
        self.shapes = [(h, w) for h in self.sides for w in self.sides
                       if max(h, w) / min(h, w) <= max_aspect]
        self.max_aspect = float(max_aspect)
        self.cache = FrameCache(int(cache_mb * 2**20), short_side, max_frames, disk_dir=disk_cache)
        lo, hi = (int(crop_widths[0]), int(crop_widths[1]))
        if not 0 < lo <= hi:
            raise ValueError(f"crop widths need 0 < min <= max, got {crop_widths}")
        self.crop_widths = (lo, hi)
        if not gops or any(int(g) < 1 for g in gops):
            raise ValueError(f"GOP lengths must be positive, got {gops}")
        self.gops = tuple(int(g) for g in gops)
        if native_max_side is not None and native_max_side < stride:
            raise ValueError(f"native_max_side must be at least the stride {stride}")
        self.native_max_side = native_max_side
        self.native = NativeFrames(int(native_cache_mb * 2**20), max_frames)
        self.max_temporal_stride = max(1, int(max_temporal_stride))
        self.flip = flip
        if not 0.0 <= colour <= 1.0:
            raise ValueError(f"colour augmentation is a probability, got {colour}")
        self.colour = float(colour)
        self._broken: set[Path] = set()

    def warm(self, path: Path) -> None:
        """Do now the decoding a first task from ``path`` would do (cached copy, frame count)."""
        if "down" in self.mix:
            self.cache.get(path)
        if "native" in self.mix or "crop" in self.mix:
            self.native.info(path)

    def _colours(self, rng: np.random.Generator) -> list[int] | None:
        """With probability ``colour``, one of the five non-identity orders of the RGB channels
        (a task of other colours, same structure: 16 train clips are few); else None. Without
        colour augmentation no random number is drawn, so such runs sample as before."""
        if self.colour <= 0.0 or rng.random() >= self.colour:
            return None
        return list(_PERMUTATIONS[int(rng.integers(len(_PERMUTATIONS)))])

    def _kind(self, rng: np.random.Generator) -> str:
        kinds = list(self.mix)
        if len(kinds) == 1:
            return kinds[0]  # no draw: a single-kind run samples exactly as before mixes existed
        return kinds[int(rng.choice(len(kinds), p=[self.mix[k] for k in kinds]))]

    def sample(self, rng: np.random.Generator, n_frames: int) -> Task:
        """One task of (up to) ``n_frames`` frames; shorter videos give shorter tasks."""
        kind = self._kind(rng)
        for _ in range(10 * len(self.videos)):
            path = self.videos[int(rng.integers(len(self.videos)))]
            if path in self._broken:
                continue
            try:
                if kind == "down":
                    return self._cut(self.cache.get(path), rng, n_frames, path.name)
                return self._full_res(path, kind, rng, n_frames)
            except NervcError as e:
                log.warning("skipping %s: %s", path.name, e)
                self._broken.add(path)
                continue
        raise NervcError("no decodable videos to sample tasks from")

    def _span(self, rng: np.random.Generator, total: int, n_frames: int) -> tuple[int, int, np.ndarray]:
        """A GOP span of the video and ``n`` sorted distinct frames in it: (first, span, indices)."""
        gop = self.gops[int(rng.integers(len(self.gops)))] if len(self.gops) > 1 else self.gops[0]
        span = max(1, min(gop, total))
        n = max(1, min(n_frames, span))
        first = int(rng.integers(0, total - span + 1))
        idx = np.sort(rng.choice(span, n, replace=False)) + first
        return first, span, idx

    def _full_res(self, path: Path, kind: str, rng: np.random.Generator, n_frames: int) -> Task:
        total, vh, vw = self.native.info(path)
        first, span, idx = self._span(rng, total, n_frames)
        s = self.stride
        if kind == "native":
            factor = 1
            if self.native_max_side is not None:
                while max(vh // factor, vw // factor) > self.native_max_side:
                    factor += 1
            x = self.native.frames(path, idx, factor)
            th, tw = -(-x.shape[1] // s) * s, -(-x.shape[2] // s) * s
        else:
            w_hi = max(s, min(self.crop_widths[1], vw) // s * s)
            w_lo = min(w_hi, -(-self.crop_widths[0] // s) * s)
            tw = int(rng.integers(w_lo // s, w_hi // s + 1)) * s
            h_max = max(s, vh // s * s)
            if rng.random() < 0.5:  # the frame's proportions
                th = min(h_max, max(s, int(round(tw * vh / vw / s)) * s))
            else:  # any height within the frame, aspect bounded by max_aspect
                h_lo = min(h_max, max(s, -(-int(tw / self.max_aspect) // s) * s))
                h_hi = max(h_lo, min(h_max, int(tw * self.max_aspect) // s * s))
                th = int(rng.integers(h_lo // s, h_hi // s + 1)) * s
            ch, cw = min(th, vh), min(tw, vw)
            y0 = int(rng.integers(0, vh - ch + 1))
            x0 = int(rng.integers(0, vw - cw + 1))
            x = self.native.frames(path, idx, 1)[:, y0:y0 + ch, x0:x0 + cw]
        times = (idx - first).astype(np.float32) / max(span - 1, 1)
        if rng.random() < 0.5:
            times = 1.0 - times  # play backwards: motion in both directions
        if self.flip and rng.random() < 0.5:
            x = x[:, :, ::-1]
        perm = self._colours(rng)
        if perm is not None:
            x = x[..., perm]
        x = pad_frames(np.ascontiguousarray(x), th, tw)  # the encoder's replicate padding
        frames = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()
        return Task(frames=frames, times=torch.from_numpy(times.astype(np.float32)),
                    source=path.name, kind=kind, span=span)

    def _cut(self, video: np.ndarray, rng: np.random.Generator, n_frames: int, name: str) -> Task:
        total, vh, vw, _ = video.shape
        n = max(1, min(n_frames, total))
        max_stride = max(1, min(self.max_temporal_stride, (total - 1) // max(n - 1, 1)))
        tstride = int(rng.integers(1, max_stride + 1))
        span = (n - 1) * tstride + 1
        t0 = int(rng.integers(0, total - span + 1))
        idx = np.arange(n) * tstride + t0
        if rng.random() < 0.5:
            idx = idx[::-1].copy()  # play backwards: motion in both directions

        h, w = self.shapes[int(rng.integers(len(self.shapes)))]
        fit = min(vh / h, vw / w)
        scale = float(np.exp(rng.uniform(0.0, np.log(fit)))) if fit > 1.0 else fit
        ch, cw = min(vh, max(1, round(h * scale))), min(vw, max(1, round(w * scale)))
        y0 = int(rng.integers(0, vh - ch + 1))
        x0 = int(rng.integers(0, vw - cw + 1))
        crop = torch.from_numpy(np.ascontiguousarray(video[idx, y0:y0 + ch, x0:x0 + cw]))
        x = crop.permute(0, 3, 1, 2).float().div_(255.0)
        if (ch, cw) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=ch > h or cw > w,
                              align_corners=False).clamp_(0.0, 1.0)
        if self.flip and rng.random() < 0.5:
            x = x.flip(-1)
        perm = self._colours(rng)
        if perm is not None:
            x = x[:, perm]
        times = torch.arange(n, dtype=torch.float32) / max(n - 1, 1)
        return Task(frames=x.contiguous(), times=times, source=name, kind="down", span=n)
