"""Meta-training tasks: short, small clips cut at random from a folder of videos.

A task is ``n`` consecutive frames (random start, random temporal stride), a random crop at a
random scale resized to a random ``h x w`` (both multiples of the model's total stride, so the
init sees many grid sizes and stays resolution agnostic), optionally mirrored. Decoded videos are
kept as downscaled ``uint8`` arrays in an LRU cache bounded in bytes; decoding goes through
``nervcore.video_io.read_video`` in chunks so a long HD clip never sits in memory at full size,
and can be mirrored to a disk folder (plain ``.npy``, no pickle) so later runs skip decoding.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nervcore.atomic import atomic_output
from nervcore.errors import NervcError
from nervcore.video_io import IMAGE_EXTS, RAW_EXTS, read_video

log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m", ".264", ".h264", ".265", ".h265",
              ".hevc", ".m4v", ".mpg", ".mpeg", ".ts"} | RAW_EXTS
DEFAULT_SIDES = (64, 80, 96, 112, 128, 144, 160)


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


@dataclass
class Task:
    """``frames`` float ``[n, 3, h, w]`` in [0, 1] and their normalised times ``[n]``."""

    frames: Tensor
    times: Tensor
    source: str

    @property
    def hw(self) -> tuple[int, int]:
        return (int(self.frames.shape[-2]), int(self.frames.shape[-1]))


class TaskSampler:
    """Draws tasks from every video of a folder; all randomness comes from the caller's ``rng``.

    ``sides`` are the allowed task heights/widths (multiples of ``stride``); ``max_aspect``
    bounds ``max(h, w) / min(h, w)``; crops are taken at a scale drawn log-uniformly between
    1 (native pixels of the cached copy) and the largest that fits, so tasks mix detail and
    whole-scene views.
    """

    def __init__(self, folder: str | os.PathLike, sides: tuple[int, ...] = DEFAULT_SIDES,
                 stride: int = 16, max_aspect: float = 2.0, cache_mb: float = 1024,
                 short_side: int = 256, max_frames: int = 240, max_temporal_stride: int = 2,
                 flip: bool = True, disk_cache: str | os.PathLike | None = None) -> None:
        self.videos = list_videos(folder)
        bad = [s for s in sides if s <= 0 or s % stride]
        if bad or not sides:
            raise ValueError(f"task sides must be positive multiples of {stride}, got {sides}")
        self.sides = tuple(sorted(set(int(s) for s in sides)))
        self.shapes = [(h, w) for h in self.sides for w in self.sides
                       if max(h, w) / min(h, w) <= max_aspect]
        self.cache = FrameCache(int(cache_mb * 2**20), short_side, max_frames, disk_dir=disk_cache)
        self.max_temporal_stride = max(1, int(max_temporal_stride))
        self.flip = flip
        self._broken: set[Path] = set()

    def sample(self, rng: np.random.Generator, n_frames: int) -> Task:
        """One task of (up to) ``n_frames`` frames; shorter videos give shorter tasks."""
        for _ in range(10 * len(self.videos)):
            path = self.videos[int(rng.integers(len(self.videos)))]
            if path in self._broken:
                continue
            try:
                video = self.cache.get(path)
            except NervcError as e:
                log.warning("skipping %s: %s", path.name, e)
                self._broken.add(path)
                continue
            return self._cut(video, rng, n_frames, path.name)
        raise NervcError("no decodable videos to sample tasks from")

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
        times = torch.arange(n, dtype=torch.float32) / max(n - 1, 1)
        return Task(frames=x.contiguous(), times=times, source=name)
