"""The codecs the RD benchmark compares: one tiny class per codec, one instance per rate point.

Every codec gets the same RGB uint8 frames. The traditional ones (x264, x265, SVT-AV1 through
PyAV) are fed YUV 4:2:0 made by :mod:`benchmarks.colour` (BT.601 limited range) and write a
raw elementary stream, so the byte count is the codec's own bitstream with no container:

* x264 -> H.264 Annex-B (``.264``). x264 writes its version and full option string into a
  user-data SEI NAL (~600 bytes); it carries no decoding information, so it is removed before
  the bytes are counted (the count removed is recorded as ``stripped_bytes``).
* x265 -> HEVC Annex-B (``.265``) with ``info=0`` (the same SEI, not written at all).
* SVT-AV1 -> AV1 low-overhead OBU stream (``.obu``, "Section 5"), temporal delimiters
  included (2 bytes a frame). An IVF container would add 32 + 12 bytes a frame.

nervc writes its own ``.nerv`` file through the codec's Python API; its whole file size counts
(header and init digest included).
"""
from __future__ import annotations

import ctypes
import glob
import io
import os
import tempfile
import time
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np

from benchmarks.colour import pack_yuv420, rgb_to_yuv420, unpack_yuv420, yuv420_to_rgb

# SVT-AV1 prints its banner and configuration straight to stderr unless SVT_LOG is set before
# the library first logs; 1 = errors only. x265 is silenced per encoder (log-level=error).
os.environ.setdefault("SVT_LOG", "1")


def quiet_ffmpeg() -> None:
    """Route FFmpeg's log to PyAV's no-op callback (PyAV's own default).

    ``av.logging.set_level(<int>)`` installs a Python callback that takes the GIL from
    FFmpeg's worker threads; with threaded decoding that deadlocks (seen here: ``read_video``
    hanging inside the decoder after some encodes). Called before every encode/decode
    because importing another module may have switched the Python callback back on.
    """
    av.logging.set_level(None)


quiet_ffmpeg()

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


@lru_cache(maxsize=None)
def _bundled_lib(pattern: str) -> ctypes.CDLL | None:
    """The encoder library PyAV's wheel ships (``av.libs/``), to ask it for its version."""
    here = Path(av.__file__).resolve().parent
    for d in (here.parent / "av.libs", here / ".dylibs", here):
        hits = sorted(glob.glob(str(d / pattern)))
        if hits:
            try:
                return ctypes.CDLL(hits[0])
            except OSError:
                return None
    return None


def _lib_string(pattern: str, symbol: str, function: bool) -> str | None:
    lib = _bundled_lib(pattern)
    if lib is None:
        return None
    try:
        if function:
            f = getattr(lib, symbol)
            f.restype = ctypes.c_char_p
            return f().decode()
        return ctypes.c_char_p.in_dll(lib, symbol).value.decode()
    except (AttributeError, ValueError, OSError):
        return None


def split_annexb(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit in an Annex-B stream, start codes excluded."""
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    spans = []
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        while e > s and data[e - 1] == 0 and k + 1 < len(starts):
            e -= 1  # zero_byte of the next 4-byte start code / trailing_zero_8bits
        spans.append((s, e))
    return spans


def strip_h264_info_sei(data: bytes) -> tuple[bytes, str | None]:
    """Drop x264's user-data-unregistered SEI (its version/options banner).

    Returns the stream without it and the banner text (to report the x264 build).
    Only SEI NAL units (type 6) whose first message is user data unregistered (type 5) and
    mention x264 are removed; everything needed for decoding stays.
    """
    out = bytearray()
    banner = None
    prev_end = 0
    for s, e in split_annexb(data):
        sc = s - 3
        while sc > prev_end and data[sc - 1] == 0:
            sc -= 1
        nal = data[s:e]
        if len(nal) > 2 and nal[0] & 0x1F == 6 and nal[1] == 5 and b"x264" in nal:
            text = nal[nal.find(b"x264"):]
            banner = text.split(b"\x00")[0].decode("latin-1")
        else:
            out += data[sc:e]
        prev_end = e
    out += data[prev_end:]
    return bytes(out), banner


class PyAVCodec:
    """A traditional codec run through PyAV at one CRF; subclasses fill in the class fields."""

    name: ClassVar[str]
    encoder: ClassVar[str]
    muxer: ClassVar[str]  # FFmpeg raw-stream format, also used to demux for decoding
    ext: ClassVar[str]
    ladder: ClassVar[tuple[int, ...]]
    traditional: ClassVar[bool] = True

    def __init__(self, crf: int, threads: int = 1) -> None:
        self.crf = int(crf)
        self.threads = int(threads)
        self.stripped_bytes = 0

    @property
    def point(self) -> str:
        return f"crf{self.crf}"

    @property
    def options(self) -> dict[str, str]:
        raise NotImplementedError

    @classmethod
    def version(cls) -> str:
        raise NotImplementedError

    def postprocess(self, data: bytes) -> bytes:
        return data

    def encode(self, frames: np.ndarray, fps: Fraction) -> bytes:
        """RGB uint8 [N, H, W, 3] -> raw elementary stream bytes."""
        quiet_ffmpeg()
        n, h, w, _ = frames.shape
        y, u, v = rgb_to_yuv420(frames)
        buf = io.BytesIO()
        with av.open(buf, "w", format=self.muxer) as c:
            s = c.add_stream(self.encoder, rate=Fraction(fps), options=self.options)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.codec_context.color_range = 1  # MPEG (limited) range
            for i in range(n):
                vf = av.VideoFrame.from_ndarray(pack_yuv420(y[i], u[i], v[i]), format="yuv420p")
                vf.pts = i
                vf.color_range = 1
                for pkt in s.encode(vf):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        return self.postprocess(buf.getvalue())

    def decode_yuv(self, data: bytes) -> Planes:
        """Bitstream -> decoded planes (Y [N, H, W], U, V [N, H/2, W/2]), no colour conversion."""
        quiet_ffmpeg()
        with av.open(io.BytesIO(data), format=self.muxer) as c:
            planes = [unpack_yuv420(f.to_ndarray(format="yuv420p")) for f in c.decode(video=0)]
        if not planes:
            raise ValueError(f"{self.name}: bitstream decoded to no frames")
        return tuple(np.stack([p[k] for p in planes]) for k in range(3))  # type: ignore[return-value]

    def decode(self, data: bytes) -> np.ndarray:
        """Bitstream -> RGB uint8 [N, H, W, 3] (the inverse conversion of the input's)."""
        return yuv420_to_rgb(*self.decode_yuv(data))


class X264(PyAVCodec):
    """H.264 by x264, preset medium, default tune and GOP (keyint 250, 3 B-frames)."""

    name = "x264"
    encoder = "libx264"
    muxer = "h264"
    ext = ".264"
    ladder = (22, 27, 32, 37, 42, 47)

    @property
    def options(self) -> dict[str, str]:
        return {"preset": "medium", "crf": str(self.crf), "threads": str(self.threads)}

    def postprocess(self, data: bytes) -> bytes:
        out, banner = strip_h264_info_sei(data)
        self.stripped_bytes = len(data) - len(out)
        if banner:
            _X264_BANNER[0] = banner
        return out

    @classmethod
    def version(cls) -> str:
        if _X264_BANNER[0] is None:  # encode one tiny frame to read x264's own banner
            X264(crf=51).encode(np.zeros((1, 16, 16, 3), np.uint8), Fraction(25))
        banner = _X264_BANNER[0] or "x264 (unknown build)"
        return banner.split(" - H.264")[0].strip()


_X264_BANNER: list[str | None] = [None]


class X265(PyAVCodec):
    """HEVC by x265, preset medium, default tune and GOP (keyint 250, 4 B-frames)."""

    name = "x265"
    encoder = "libx265"
    muxer = "hevc"
    ext = ".265"
    ladder = (22, 27, 32, 37, 42, 47)

    @property
    def options(self) -> dict[str, str]:
        return {"preset": "medium", "crf": str(self.crf),
                "x265-params": f"log-level=error:info=0:pools={self.threads}:frame-threads=1"}

    @classmethod
    def version(cls) -> str:
        v = _lib_string("libx265*", "x265_version_str", function=False)
        return f"x265 {v}" if v else "x265 (unknown build)"


class SvtAv1(PyAVCodec):
    """AV1 by SVT-AV1, preset 6, default tune (PSNR) and GOP; CRF on the 1..63 scale."""

    name = "svtav1"
    encoder = "libsvtav1"
    muxer = "obu"
    ext = ".obu"
    ladder = (27, 35, 43, 51, 57, 63)
    preset = 6

    @property
    def options(self) -> dict[str, str]:
        return {"preset": str(self.preset), "crf": str(self.crf), "svtav1-params": f"lp={self.threads}"}

    @classmethod
    def version(cls) -> str:
        v = _lib_string("libSvtAv1Enc*", "svt_av1_get_version", function=True)
        d = _lib_string("libdav1d*", "dav1d_version", function=True)
        return f"SVT-AV1 {v or '(unknown build)'} (decoder dav1d {d or '?'})"


LEGACY_BATCH = 8  # frames per step of every nervc record made with --steps
BENCH_PRESET = "medium"  # what nervc runs when the benchmark gives no --steps


class Nervc:
    """nervc through its Python API at one quality level; ``init`` 'default' or 'random'.

    ``encode_seconds`` and ``decode_seconds`` are nervc's own timers (its encoder leaves out
    the verification decode it runs on the file it wrote).
    """

    traditional: ClassVar[bool] = False
    ext: ClassVar[str] = ".nerv"

    def __init__(self, quality: int, init: str = "default", steps: int | None = None,
                 seed: int = 0, tune: str | None = None, name: str | None = None,
                 meta_lr: bool = True, preset: str = BENCH_PRESET) -> None:
        self.quality = int(quality)
        self.init = init
        self.steps = steps
        self.preset = preset  # the encoder's --preset when no --steps is given
        self.seed = seed
        self.tune = tune  # the encoder's --tune; None: its default
        self.meta_lr = bool(meta_lr)  # False: --no-meta-lr (plain Adam, the init's step sizes unused)
        self.name = name or ("nervc-meta" if init == "default" else f"nervc-{init}")
        self.stripped_bytes = 0
        self.last_encode_seconds: float | None = None
        self.last_decode_seconds: float | None = None
        self.last_info: dict[str, Any] = {}
        self._prepared: bytes | None = None

    @staticmethod
    def ladder() -> list[int]:
        import codec
        return list(codec.QUALITY_LEVELS)

    @property
    def point(self) -> str:
        return f"q{self.quality}"

    @property
    def options(self) -> dict[str, Any]:
        from codec.finetune import DEFAULT_TUNE
        opts = {"quality": self.quality, "init": self.init, "steps": self.steps, "seed": self.seed,
                "tune": self.tune or DEFAULT_TUNE}  # records before --tune existed were "ssim"
        if self.steps is None:  # the encoder's preset decides (records of the old default differ)
            opts["preset"] = self.preset
        if not self.meta_lr:  # only when off: the records made before it existed stay valid
            opts["meta_lr"] = False
        return opts

    @property
    def fit_kwargs(self) -> dict[str, Any]:
        """``--steps N`` keeps its rd-v1/rd-v2 meaning, N steps of 8 frames (the batch the
        encoder used before presets); without it the encoder's default preset decides."""
        return {"batch": LEGACY_BATCH} if self.steps is not None else {"preset": self.preset}

    @classmethod
    def version(cls, init: str = "default") -> str:
        import codec
        v = getattr(codec, "__version__", None)
        if v is None:
            try:
                from importlib.metadata import version
                v = version("nervc")
            except Exception:  # not installed: running from the tree
                v = "tree"
        text = f"nervc {v}"
        if init == "default":
            try:
                from metanerv.init_file import DEFAULT_INIT, load_init
                text += f" (init {load_init(DEFAULT_INIT).short_id})"
            except Exception as e:  # no shipped init yet: say so rather than fail
                text += f" (no default init: {type(e).__name__})"
        elif init != "random":  # an init file (bench --init): its id, so no record of another is reused
            from metanerv.init_file import load_init
            text += f" (init {load_init(init).short_id} from {Path(init).name})"
        return text

    def encode(self, frames: np.ndarray, fps: Fraction) -> bytes:
        """This point's ``.nerv`` bytes; from a shared :meth:`encode_group` fit when one ran."""
        if self._prepared is None:
            Nervc.encode_group([self], frames, fps)
        data, self._prepared = self._prepared, None
        return data

    @staticmethod
    def encode_group(points: list["Nervc"], frames: np.ndarray, fps: Fraction) -> None:
        """Encode several quality levels of one init with ``codec.encode_ladder``: one fit.

        Rungs differ only after fine-tuning, so the lead's API fits once and codes every rung.
        Each point's ``encode_seconds`` is the encoder's own figure for that rung: the shared
        fit plus that rung's pruning/quantization pass (what encoding only it would cost).
        """
        import codec
        from nervcore.video_io import Video
        if len({(p.init, p.steps, p.seed, p.tune, p.meta_lr, p.preset) for p in points}) != 1:
            raise ValueError("encode_group needs points of one init, step budget, seed, tune, step sizes and preset")
        first = points[0]
        quiet_ffmpeg()
        with tempfile.TemporaryDirectory(prefix="nervc-bench-") as d:
            outs = {p.quality: Path(d) / f"q{p.quality}{Nervc.ext}" for p in points}
            t0 = time.perf_counter()
            res = codec.encode_ladder(Video(np.ascontiguousarray(frames), Fraction(fps)), outs,
                                      init=first.init, steps=first.steps, seed=first.seed,
                                      progress=False, overwrite=True, meta_lr=first.meta_lr, **first.fit_kwargs,
                                      **({"tune": first.tune} if first.tune else {}))
            wall = time.perf_counter() - t0
            for p in points:
                r = res[p.quality]
                data = outs[p.quality].read_bytes()
                if len(data) != r.num_bytes:
                    raise RuntimeError(f"nervc reported {r.num_bytes} bytes but wrote {len(data)}")
                p._prepared = data
                p.last_encode_seconds = float(r.encode_seconds)
                p.last_info = {"encoder_psnr": float(r.psnr), "group_wall_seconds": wall,
                               "fit_rollbacks": int(r.rollbacks),
                               "group_qualities": sorted(outs)}
        quiet_ffmpeg()

    def decode(self, data: bytes) -> np.ndarray:
        import codec
        with tempfile.TemporaryDirectory(prefix="nervc-bench-") as d:
            p = Path(d) / f"clip{self.ext}"
            p.write_bytes(data)
            out = codec.decode(p, None, device="cpu",
                               init=None if self.init in ("default", "random") else [str(self.init)])
        self.last_decode_seconds = float(out.decode_seconds)
        return np.asarray(out.frames)


TRADITIONAL: dict[str, type[PyAVCodec]] = {c.name: c for c in (X264, X265, SvtAv1)}
# nervc as the benchmark runs it: init, --tune (absent: the encoder's default) and whether the
# fit uses the init's Meta-SGD step sizes (absent: it does) per name.
NERVC_VARIANTS: dict[str, dict[str, Any]] = {"nervc-meta": {"init": "default"},
                                             "nervc-random": {"init": "random"},
                                             "nervc-meta-ssim": {"init": "default", "tune": "ssim"},
                                             "nervc-meta-adam": {"init": "default", "meta_lr": False}}
NERVC_INITS: dict[str, str] = {name: v["init"] for name, v in NERVC_VARIANTS.items()}
ALL_CODECS: list[str] = [*TRADITIONAL, *NERVC_INITS]
# What `nervc bench` runs when --codecs is not given: the baselines and nervc with the shipped and
# a random init; the other variants (another tune, plain Adam) are studies, asked for by name.
DEFAULT_CODECS: list[str] = [*TRADITIONAL, "nervc-meta", "nervc-random"]


def nervc_available() -> bool:
    """True once the codec package exposes the encode/decode API."""
    try:
        import codec
    except ImportError:
        return False
    return all(hasattr(codec, a) for a in ("encode_ladder", "decode", "QUALITY_LEVELS"))


def ladder(name: str) -> list[str]:
    """Point labels of a codec's rate ladder, highest rate first for traditional codecs."""
    if name in TRADITIONAL:
        return [f"crf{c}" for c in TRADITIONAL[name].ladder]
    if name in NERVC_INITS:
        return [f"q{q}" for q in Nervc.ladder()]
    raise KeyError(f"unknown codec {name!r}; known: {', '.join(ALL_CODECS)}")


def variant_init(name: str, init: str | None = None) -> str:
    """The init nervc codec ``name`` encodes from: ``init`` (an init file, ``nervc bench
    --init``) replaces the shipped one of the variants that use it; random stays random."""
    own = NERVC_INITS[name]
    return str(init) if init and own == "default" else own


def make(name: str, point: str, *, threads: int = 1, steps: int | None = None,
         seed: int = 0, init: str | None = None, preset: str = BENCH_PRESET) -> PyAVCodec | Nervc:
    """Instance of codec ``name`` at ``point`` (a label from :func:`ladder`); ``init``: see
    :func:`variant_init`; ``preset``: nervc's encode effort when ``steps`` is not given."""
    if name in TRADITIONAL:
        if not point.startswith("crf"):
            raise ValueError(f"{name}: point {point!r} is not crfN")
        return TRADITIONAL[name](int(point[3:]), threads=threads)
    if name in NERVC_INITS:
        if not point.startswith("q"):
            raise ValueError(f"{name}: point {point!r} is not qN")
        v = NERVC_VARIANTS[name]
        return Nervc(int(point[1:]), init=variant_init(name, init), steps=steps, seed=seed, tune=v.get("tune"),
                     name=name, meta_lr=v.get("meta_lr", True), preset=preset)
    raise KeyError(f"unknown codec {name!r}; known: {', '.join(ALL_CODECS)}")


def version(name: str, init: str | None = None) -> str:
    """Version string of codec ``name`` (library build, or nervc version and init id)."""
    if name in TRADITIONAL:
        return TRADITIONAL[name].version()
    return Nervc.version(variant_init(name, init))
