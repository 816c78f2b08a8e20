"""Which frames every codec is given: the RD benchmark protocol, versioned.

Protocol ``rd-v2`` (see docs/benchmarks.md) has exactly rd-v1's clips and frames; the version
moved with nervc's bitstream v2 so that records of the two codec generations never mix in one
results folder. Every clip of ``shared/data/bench`` except
``coffee_720p.mp4``, its first 64 frames (all when fewer), native resolution; plus
``coffee_720p.mp4`` reduced to 320x180 by a 4x4 box (area) filter on the RGB frames. The quick
set (``--quick``) is two tiny crops of the carphone clip the package ships, for tests and
smoke runs; its results are labelled with the quick protocol and never mix with v1.

Change anything here that changes the frames and the version must change with it.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from nervcore.video_io import RAW_EXTS, Video, read_video

PROTOCOL_VERSION = "rd-v2"
QUICK_PROTOCOL_VERSION = "rd-quick-v2"
MAX_FRAMES = 64
REPO = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO.parent / "shared" / "data"
SHIPPED_CLIP = REPO / "codec" / "data" / "carphone_qcif_120f.mp4"


@dataclass(frozen=True)
class Clip:
    """One benchmark input: a source file, a frame range and an optional reduction."""

    name: str
    path: Path
    start: int = 0
    frames: int = MAX_FRAMES
    downscale: int = 1  # integer box-filter factor applied to the RGB frames
    crop: tuple[int, int] | None = None  # (width, height) centre crop after downscaling
    fps: str | None = None  # for sources without timing (PNG folders, raw YUV): from MANIFEST

    def load(self) -> Video:
        """The RGB frames every codec receives for this clip."""
        v = read_video(self.path, fps=Fraction(self.fps) if self.fps else None,
                       frames=slice(self.start, self.start + self.frames))
        frames = box_downscale(v.frames, self.downscale) if self.downscale > 1 else v.frames
        if self.crop:
            frames = centre_crop(frames, *self.crop)
        return Video(np.ascontiguousarray(frames), v.fps)

    def describe(self) -> dict:
        return {"name": self.name, "source": self.path.name, "start": self.start,
                "max_frames": self.frames, "downscale": self.downscale,
                "crop": list(self.crop) if self.crop else None, "fps": self.fps}


def box_downscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Area filter by an integer factor: the mean of each factor x factor block, rounded.

    Exact and library-independent (unlike swscale's 'area' for non-integer ratios); rows and
    columns that do not fill a whole block are dropped.
    """
    n, h, w, c = frames.shape
    h2, w2 = h // factor, w // factor
    out = np.empty((n, h2, w2, c), np.uint8)
    for i in range(n):
        blocks = frames[i, :h2 * factor, :w2 * factor].reshape(h2, factor, w2, factor, c)
        out[i] = np.floor(blocks.mean(axis=(1, 3), dtype=np.float64) + 0.5).astype(np.uint8)
    return out


def centre_crop(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """The central ``width x height`` window (offsets even, keeping 4:2:0 chroma aligned)."""
    h, w = frames.shape[1:3]
    if width > w or height > h:
        raise ValueError(f"crop {width}x{height} larger than the {w}x{h} frame")
    y0, x0 = (h - height) // 2 // 2 * 2, (w - width) // 2 // 2 * 2
    return frames[:, y0:y0 + height, x0:x0 + width]


def v1_clips(data_root: Path = DATA_ROOT) -> list[Clip]:
    """Protocol rd-v1: the bench/ clips, named without extension, sorted by name."""
    bench = Path(data_root) / "bench"
    if not bench.is_dir():
        raise FileNotFoundError(f"{bench}: benchmark data not found (expected <repo>/../shared/data/bench)")
    rates = manifest_fps(Path(data_root) / "MANIFEST.tsv")
    clips = []
    for p in sorted(bench.iterdir(), key=lambda q: q.name.lower()):
        if p.name.startswith("."):
            continue
        untimed = p.is_dir() or p.suffix.lower() in RAW_EXTS
        fps = rates.get(p.name) if untimed else None
        if p.name == "coffee_720p.mp4":
            clips.append(Clip("coffee_320x180", p, downscale=4))
        else:
            clips.append(Clip(p.name.split(".")[0], p, fps=fps))
    return clips


def manifest_fps(path: Path) -> dict[str, str]:
    """file name -> frame rate from the data MANIFEST (empty if there is none)."""
    try:
        with open(path, newline="") as f:
            return {row["file"]: row["fps"] for row in csv.DictReader(f, delimiter="\t")
                    if row.get("file") and row.get("fps")}
    except (OSError, KeyError):
        return {}


def quick_clips() -> list[Clip]:
    """Two tiny clips from the shipped carphone video: a crop and a half-size section."""
    return [Clip("carphone_crop96x80", SHIPPED_CLIP, start=0, frames=4, crop=(96, 80)),
            Clip("carphone_half88x72", SHIPPED_CLIP, start=60, frames=4, downscale=2)]
