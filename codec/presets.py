"""Encode-effort presets: x264's names mapped to a deterministic fitting schedule per GOP.

A preset is a compute budget in seconds per megapixel of video (width x height x frames) for
one output (one rung of the ladder). The schedule spends it on steps of the v2 fit
(``codec/finetune.py::run_fit``) through a cost model of one step,

    seconds(step) = FIXED_S + NS_PER_PIXEL * 1e-9 * batch * padded_frame_pixels

so the number of steps follows from the GOP's size: a GOP twice as long gets the same visits
per frame at twice the cost, i.e. the same cost per megapixel. The rest of an encode (entropy
coding, writing, the verification decode of the file) costs ``OVERHEAD_S_PER_MP``; a preset's
predicted seconds are both. Rungs fitted together share the schedule's stable phase when its
decay phase is long (``codec.encoder.MIN_SHARED_DECAY_STEPS``), so k rungs cost about
``0.6 + 0.4 k`` times one rung's fit; at shorter fits (most presets on short clips) each rung
is its own fit and k rungs cost k.

Cost model calibration, current constants: ``python -m benchmarks.presets calibrate --seconds 4
--threads 1`` on the idle 2-core machine (2026-11-27 20:36 UTC, load 0.4-0.75, nothing else
running; ``benchmarks/results/presets_calibration.json``): one thread, wall = CPU, 4.8 ms +
1245 ns per (batch x padded pixel); QCIF / CIF / 832x480 at batch 2: 0.071 / 0.210 / 1.266 s,
at batch 8: 0.266 / 1.043 / 6.166 s; the non-fit part 0.33 s/MP. ``FIXED_S`` and
``NS_PER_PIXEL`` round that up (6 ms, 1300 ns). The 70 ms of fixed cost the first calibration
found (below) was the loaded machine's, not the step's: on a quiet machine ``medium`` got half
the QCIF steps it could afford.

The first calibration (kept in ``benchmarks/results/presets_calibration_load5.json``),
2026-11-27 19:06-19:11 UTC, the 2-core
development machine (Intel Xeon @ 2.50GHz VM, 2 vCPUs, torch 2.13.0+cpu), niced, on a machine
that was never idle that evening: load average 4.2-6.5 (a meta-training run, the rd benchmark
and other agents' experiments). Per step of ``run_fit`` with the shipped init, the minimum over
3-8 steps, seconds:

    frame      batch   1 thread: CPU (wall)    2 threads: CPU (wall)
    176x144      2        0.145 (0.37)            0.69 (1.74)
    176x144      8        0.358 (1.67)            0.94 (2.67)
    352x288      2        0.323 (1.53)            0.95 (1.78)
    352x288      8        1.262 (5.78)            1.65 (3.77)
    832x480      2        1.237 (5.62)            1.82 (4.22)
    832x480      8        6.18 (12.3)             7.97 (17.6)

On a machine that loaded, the wall time of a niced process measures its share of the CPUs, and
a 2-thread process's CPU time includes OpenMP's spin-waiting for a descheduled thread (QCIF,
batch 2: 0.69 s of CPU on 2 threads against 0.145 s on one). The one load-robust number is
the 1-thread process CPU time, fitted (relative least squares, cells of at most
``MAX_STEP_PIXELS`` per step) as 69 ms + 1411 ns per (batch x padded pixel); the constants
below round that up.

A second run at 19:47-19:49 UTC (``benchmarks/results/presets_calibration_load2.json``), when
only the rd benchmark (niced) shared the machine, load 2.1-2.7, found 1-thread wall = CPU and
29 ms + 1185 ns: QCIF / CIF / 832x480 at batch 2 took 0.098 / 0.247 / 1.037 s, which the model
overestimates by 46 / 47 / 18 %. So contention inflates even CPU time, and the model is
pessimistic for a quieter machine. The same run's 2-thread steps took 0.62 / 1.04 / 2.19 s:
with one other busy process, torch's default of 2 threads was 2-6x SLOWER than 1 thread (a
thread waiting at every op's barrier for its descheduled sibling). The presets predict one
thread's time; an encode on a shared machine should run with one thread. The fixed cost is v2's rate model (quantize, bit estimate and Adam on every
one of ~90k weights in ~20 small tensors), about a third of a CIF batch-2 step. The non-fit
part of an encode (entropy coding, writing, verification decode, PSNR) was 0.33 s of CPU per
MP on ``fixtures/desk_320x240_36f.mp4``; ``OVERHEAD_S_PER_MP`` rounds it up.

End to end, ``nervc encode`` of the bundled carphone clip (176x144, 120 frames, 3.04 MP, ``-q 5``,
``medium``: 180 steps of batch 2 at 8.5 s/MP of fit budget, 8.9 s/MP predicted) took 25.1 s of
process CPU on one thread (``OMP_NUM_THREADS=1``, ``/usr/bin/time``, 3.9 s of interpreter and
import start-up subtracted), 8.3 s/MP, at load 5-8; with a 9.0 s/MP fit budget it had taken
10.4 s/MP at load ~5, hence ``medium``'s 8.5.

Batch and learning rate: at equal compute (the cost model above), small batches fit better on
v2 too. 16 frames of ``train/chaplin.mp4`` (frames 40-55, box-reduced to 320x180), shipped
init, ``-q 3`` (lam 3.2), lr 2e-2: batch 2 / batch 8 reached 17.47 dB at 0.125 bpp / 15.81 dB
at 0.257 bpp for 8 s of modelled compute (47 / 16 steps) and 19.15 dB at 0.044 bpp / 18.07 dB
at 0.120 bpp for 20 s (117 / 40 steps): batch 2 is better in both quality and rate (more
steps also move more weights to level 0: the rate term's gradient does not grow with the
batch). At batch 2 and 8 s, lr 1e-2 gave 17.13 dB at 0.093 bpp and 4e-2 12.14 dB at 0.090 bpp,
so the v2 default 2e-2 stayed then, judged on PSNR alone. Judged on bytes too, across rungs, it
does not: at ``medium`` on the train clips (vt2people 9 f, whisper 9 f, chaplin 16 f; ``-q 3/5/7``,
``benchmarks/results/lr-by-rung/``) lr 1e-2 wrote 12-38 % fewer bytes on all 9 points, for
-0.3..+1.5 dB at ``-q 3`` and +1.1..+8.7 dB at ``-q 5``/``7``, where 2e-2 often collapsed (chaplin
q7 9.20 dB, whisper q5 18.52 dB under its q3's 19.37). The bundled demo (120 frames, ``-q 5``):
14,211 B 25.50 dB at 1e-2 vs 22,951 B 25.30 dB. At rd-v2's long fits (300 steps of 8, vt2people)
it is a wash: q4 0.0527 bpp 21.27 dB vs 0.0592 / 21.50 (+0.1 dB on the 2e-2 curve), q7 0.2716 /
25.74 vs 0.3240 / 26.65 (-0.4 dB). Since 2026-11-28 the presets use 1e-2. The batch is capped by the GOP's frame count and by
``MAX_STEP_PIXELS`` (720p and larger: one frame per step).

Compute against quality: ``medium`` spends about a quarter of what the encoder's earlier fixed
default did (300 steps of batch 8: 129 s, 42 s/MP, for the README's demo of the same clip);
``slower`` costs about that.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from codec.ladder import DEFAULT_QUALITY, QUALITY_LEVELS, floor_rung
from nervcore.errors import NervcError

# ---- cost model (see the module docstring for how these were measured)
FIXED_S = 0.006  # per-step cost independent of the batch: the rate model's ops on every weight
NS_PER_PIXEL = 1300.0  # seconds per (padded frame pixel x batch) of one step, x 1e9
OVERHEAD_S_PER_MP = 0.4  # coding, writing and the verification decode, per MP of video
# A step's cost per tune relative to the calibrated one (measured on the L1 + SSIM loss;
# ``balanced`` adds only an MSE to it): ``--tune psnr`` skips the SSIM blurs. Median process CPU
# of batch-2 steps, one thread, the three tunes interleaved in one process (2026-11-28, AMD EPYC
# VM, beside a meta-training run): psnr / balanced = 0.75 (176x144), 0.76 (352x288), 0.82
# (208x128, a coded size); ssim / balanced 0.97-1.04. End to end (the bundled demo at `medium`,
# coded 110x90, where the fixed cost weighs more) a psnr step took ~0.87 of a balanced one:
# 0.85 keeps a psnr encode within ~3 % of a balanced one's CPU time, with 1/0.85 the steps
# (benchmarks/results/tune-cost/step_cost.py).
TUNE_STEP_COST: dict[str, float] = {"balanced": 1.0, "ssim": 1.0, "psnr": 0.85}
COST_TUNE = "balanced"  # the tune the presets are priced at unless told (the encoder's default)
MAX_STEP_PIXELS = 1_000_000  # at most this many pixels (batch x frame) in one step unless one
# frame is larger: the per-pixel cost rises once a step outgrows the caches, and small batches
# fit better at equal compute anyway
MIN_STEPS = 10  # a GOP so small that its budget buys fewer steps still gets these, as long
MIN_STEPS_SECONDS = 2.0  # as they cost at most this (a lone 1080p frame keeps its budget)
DEFAULT_PRESET = "medium"
TOP_QUALITY = max(QUALITY_LEVELS)


@dataclass(frozen=True)
class PresetSpec:
    """What a preset name fixes; the step count follows from the GOP's size."""

    fit_seconds_per_mp: float  # fitting budget per megapixel of video under the cost model
    batch: int = 2  # frames per step before the GOP and per-step pixel caps
    lr: float = 1e-2  # peak learning rate of the residuals (FitSettings.lr); see the docstring


PRESETS: dict[str, PresetSpec] = {
    "ultrafast": PresetSpec(0.6),
    "superfast": PresetSpec(1.2),
    "veryfast": PresetSpec(2.0),
    "faster": PresetSpec(3.2),
    "fast": PresetSpec(5.4),
    "medium": PresetSpec(8.5),
    "slow": PresetSpec(18.0),
    "slower": PresetSpec(36.0),
    "veryslow": PresetSpec(72.0),
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)  # fastest first


@dataclass(frozen=True)
class PresetSchedule:
    """The fit of one GOP under a preset, and what it is predicted to cost."""

    preset: str
    steps: int
    batch: int
    lr: float
    megapixels: float  # of the GOP: width x height x frames / 1e6, unpadded
    fit_seconds: float  # predicted, the fit alone
    predicted_seconds: float  # predicted, fit + coding + verification decode, one output
    visits_per_frame: float  # steps * batch / frames

    @property
    def predicted_seconds_per_mp(self) -> float:
        return self.predicted_seconds / self.megapixels

    def overrides(self) -> dict[str, Any]:
        """The ``metanerv.fit.FitSettings`` fields this schedule sets."""
        return {"steps": self.steps, "batch": self.batch, "lr": self.lr}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_preset(preset: object) -> PresetSpec:
    """The spec of ``preset``; an unknown name is a user error that lists the valid ones."""
    try:
        return PRESETS[preset]  # type: ignore[index]
    except (KeyError, TypeError):
        raise NervcError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESET_NAMES)}") from None


def step_seconds(batch: int, frame_pixels: float, tune: str = COST_TUNE) -> float:
    """Predicted seconds of one fitting step (cost model, one thread) of the fit's ``tune``."""
    return _tune_cost(tune) * (FIXED_S + NS_PER_PIXEL * 1e-9 * batch * frame_pixels)


def _tune_cost(tune: str) -> float:
    try:
        return TUNE_STEP_COST[tune]
    except (KeyError, TypeError):
        raise NervcError(f"--tune must be one of {', '.join(TUNE_STEP_COST)}, got {tune!r}") from None


def padded_pixels(width: int, height: int, stride: int = 16) -> int:
    """Pixels of one frame as the model sees it: padded up to a multiple of ``stride``."""
    return (-(-width // stride) * stride) * (-(-height // stride) * stride)


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NervcError(f"{what} must be a positive integer, got {value!r}")
    return value


def schedule(preset: str, width: int, height: int, frames: int, stride: int = 16,
             coded_hw: tuple[int, int] | None = None, tune: str = COST_TUNE) -> PresetSchedule:
    """The schedule ``preset`` gives a GOP of ``frames`` frames of ``width x height``, drawn by
    the network at ``coded_hw`` (height, width; default the same size): the budget is the
    output's megapixels, a step costs what a step at the coded size of the fit's ``tune``
    costs (``TUNE_STEP_COST``).

    Deterministic (a pure function of its arguments). A slower preset never gets fewer frame
    visits (``steps * batch``) than a faster one for the same GOP.
    """
    spec = check_preset(preset)
    width, height = _positive_int(width, "width"), _positive_int(height, "height")
    frames, stride = _positive_int(frames, "GOP frame count"), _positive_int(stride, "stride")
    ch, cw = coded_hw or (height, width)
    frame_px = padded_pixels(_positive_int(cw, "coded width"), _positive_int(ch, "coded height"), stride)
    mp = width * height * frames / 1e6
    visits = 0  # the previous (faster) preset's steps * batch: never fewer for a slower one
    for name in PRESET_NAMES:  # walk up to this preset
        s = PRESETS[name]
        batch = max(1, min(s.batch, frames, MAX_STEP_PIXELS // frame_px))
        cost = step_seconds(batch, frame_px, tune)
        floor = max(1, min(MIN_STEPS, math.floor(MIN_STEPS_SECONDS / cost)))
        steps = max(floor, math.floor(s.fit_seconds_per_mp * mp / cost), -(-visits // batch))
        visits = steps * batch
        if name == preset:
            break
    fit = steps * step_seconds(batch, frame_px, tune)
    return PresetSchedule(preset, steps, batch, spec.lr, mp, fit, fit + OVERHEAD_S_PER_MP * mp,
                          steps * batch / frames)


def fit_overrides(preset: str, width: int, height: int, frames: int, stride: int = 16,
                  given: Mapping[str, Any] | None = None,
                  coded_hw: tuple[int, int] | None = None, tune: str = COST_TUNE) -> dict[str, Any]:
    """``FitSettings`` fields (steps, batch, lr) of ``preset`` for one GOP, leaving out those
    ``given`` explicitly (not None): an expert's ``--steps`` wins over the preset's."""
    out = schedule(preset, width, height, frames, stride, coded_hw, tune).overrides()
    return {k: v for k, v in out.items() if (given or {}).get(k) is None}


def predict_seconds(preset: str, width: int, height: int, num_frames: int, gop_frames: int,
                    stride: int = 16, coded_hw: tuple[int, int] | None = None, tune: str = COST_TUNE) -> float:
    """Predicted seconds of encoding a whole video to one output (every GOP's schedule)."""
    gop_frames = min(_positive_int(gop_frames, "GOP size"), _positive_int(num_frames, "frame count"))
    full, rest = divmod(num_frames, gop_frames)
    total = full * schedule(preset, width, height, gop_frames, stride, coded_hw, tune).predicted_seconds
    return total + (schedule(preset, width, height, rest, stride, coded_hw, tune).predicted_seconds
                    if rest else 0.0)


def table(width: int = 352, height: int = 288, frames: int = 120) -> list[PresetSchedule]:
    """Every preset's schedule for one GOP at the source size, fastest first."""
    return [schedule(p, width, height, frames) for p in PRESET_NAMES]


def table_text(width: int = 352, height: int = 288, frames: int = 120) -> str:
    """The presets as a short text table (``nervc encode --preset help``): the schedule of the
    default rung at the coded size ``--scale auto`` picks for it, and the coded size of the
    top rungs (:func:`auto_visits`)."""
    lines = [f"presets (fastest first) for a {width}x{height}x{frames} GOP, one output at -q "
             f"{DEFAULT_QUALITY}; s/MP is predicted, for one thread; higher -q rungs are fitted as "
             "'top -q' (a fit this short cannot use their bytes); 'coded' is the size --scale auto "
             f"fits at -q {DEFAULT_QUALITY} and at -q {TOP_QUALITY}:",
             f"  {'preset':10s} {'steps':>6s} {'batch':>5s} {'visits/frame':>12s} {'s/MP':>6s} {'top -q':>6s} "
             f"{f'coded q{DEFAULT_QUALITY}':>10s} {f'coded q{TOP_QUALITY}':>10s}"]
    for p in PRESET_NAMES:
        cw, ch = auto_coded_size(p, width, height, frames, visits=auto_visits(DEFAULT_QUALITY))
        tw, th = auto_coded_size(p, width, height, frames, visits=auto_visits(TOP_QUALITY))
        r = schedule(p, width, height, frames, coded_hw=(ch, cw))
        top_r = schedule(p, width, height, frames, coded_hw=(th, tw))
        mark = "  (default)" if p == DEFAULT_PRESET else ""
        top = floor_rung(top_r.steps * top_r.batch / frames, coded_share(width, height, tw, th))
        lines.append(f"  {p:10s} {r.steps:6d} {r.batch:5d} {r.visits_per_frame:12.1f} "
                     f"{r.predicted_seconds_per_mp:6.1f} {top:6d} {f'{cw}x{ch}':>10s} {f'{tw}x{th}':>10s}{mark}")
    return "\n".join(lines)


# ---- coded size: spend a short budget on fewer pixels (benchmarks/results/hd-scale/)
MAX_SCALE = 8  # the largest reduction `--scale N` takes
AUTO_MAX_SCALE = 4.0  # the largest reduction `--scale auto` picks
AUTO_MIN_SIDE = 90  # auto never codes a shorter side below this many pixels (160x90 measured)
AUTO_VISITS = 24.0  # auto reduces the size until a frame gets this many visits per fit (the top rungs)
# ... per rung of the ladder: the lower rungs code fewer pixels with more visits, the top rungs
# keep AUTO_VISITS. On five train clips at `medium` (benchmarks/results/auto-visits/), 96 visits
# against 24 wrote -19 % BD-rate (+0.9 dB) over q1-q7, and its q3-q7 were on the hull of every
# tried size; the larger sizes of 48 and 24 visits only reached above its top (at q7).
AUTO_VISITS_BY_RUNG: dict[int, float] = {1: 96.0, 2: 96.0, 3: 96.0, 4: 96.0, 5: 96.0, 6: 48.0,
                                           7: AUTO_VISITS, 8: AUTO_VISITS}


def coded_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """(width, height) the networks draw at reduction ``scale``: each side divided, rounded up."""
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= MAX_SCALE:
        raise NervcError(f"--scale must be auto or an integer 1..{MAX_SCALE}, got {scale!r}")
    return -(-width // scale), -(-height // scale)


def coded_share(width: int, height: int, coded_width: int, coded_height: int) -> float:
    """Coded pixels per source pixel of frames drawn at ``coded_width x coded_height`` (1: the
    source size): what a -q rung's rate weight is scaled by (``codec.ladder.rung_weight``)."""
    return coded_width * coded_height / (width * height)


def _reduced(width: int, height: int, factor: float) -> tuple[int, int]:
    return max(1, round(width / factor)), max(1, round(height / factor))


def auto_visits(quality: int) -> float:
    """The frame visits ``--scale auto`` aims at for rung ``quality`` (``AUTO_VISITS_BY_RUNG``)."""
    return AUTO_VISITS_BY_RUNG.get(quality, AUTO_VISITS)


def auto_coded_size(preset: str, width: int, height: int, frames: int, stride: int = 16,
                    given: Mapping[str, Any] | None = None, visits: float | None = None,
                    tune: str = COST_TUNE) -> tuple[int, int]:
    """``--scale auto``: the largest (width, height) in the source's proportion at which the
    preset's budget still gives every frame ``visits`` visits (default ``AUTO_VISITS``; the
    encoder asks for :func:`auto_visits` of each rung), reduced at most ``AUTO_MAX_SCALE``
    times and never below ``AUTO_MIN_SIDE`` on the shorter side (smaller sources are not
    reduced). A fixed ``--steps`` keeps the source size.

    Why: at the budgets of the fast and medium presets a fit is short of steps, not of
    pixels; at equal encode time, fitting half-size frames reached 2-4 dB more at a quarter of
    the bytes or less on 720p/1080p and 640x360 train clips (hd-scale/README.md). The reduction
    is continuous (any coded size, resized bicubic on decode), so a slower preset never codes
    fewer pixels nor gives a frame fewer visits than a faster one.
    """
    if (given or {}).get("steps") is not None:
        return width, height
    target = AUTO_VISITS if visits is None else float(visits)
    top = min(AUTO_MAX_SCALE, min(width, height) / AUTO_MIN_SIDE)

    def got(f: float) -> float:
        cw, ch = _reduced(width, height, f)
        return schedule(preset, width, height, frames, stride, (ch, cw), tune).visits_per_frame

    if top <= 1.0 or got(1.0) >= target:
        return width, height
    if got(top) < target:
        return _reduced(width, height, top)
    lo, hi = 1.0, top  # got(lo) < target <= got(hi): the smallest reduction that reaches it
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if got(mid) < target else (lo, mid)
    return _reduced(width, height, hi)
