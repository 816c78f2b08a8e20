"""Encode-effort presets: x264's names mapped to a deterministic fitting schedule per GOP.

A preset is a compute budget in seconds per megapixel of video (width x height x frames) for
one output (one rung of the ladder). The schedule spends it on steps of the fit
(``codec/finetune.py::run_fit``) through a cost model of one step,

    seconds(step) = FIXED_S + NS_PER_PIXEL * 1e-9 * batch * padded_frame_pixels

so the number of steps follows from the GOP's size: a GOP twice as long gets the same visits
per frame at twice the cost, i.e. the same cost per megapixel, and a preset's time is
predictable before the encode starts. The rest of an encode (entropy coding, writing, the
verification decode) costs ``OVERHEAD_S_PER_MP``; a preset's predicted seconds are both. Rungs
fitted together share the schedule's stable phase when its decay phase is long
(``codec.encoder.MIN_SHARED_DECAY_STEPS``); at shorter fits each rung is its own fit.

The constants are one thread's time on an idle machine (``python -m benchmarks.presets
calibrate --threads 1``, ``benchmarks/results/presets_calibration.json``), rounded up, so the
presets predict a one-thread encode: on a shared machine two torch threads can be several times
slower than one. Small batches (2 frames per step) fit better than large ones at equal compute,
and the peak learning rate is 1e-2 (2e-2 wrote more bytes and collapsed short fits). The
calibration runs and the trials behind these choices are in ``docs/experiments.md``
(presets-calibration, lr-by-rung).

``--scale auto`` also lives here: at short budgets a fit is short of steps, not pixels, so the
coded size is the largest at which the budget gives every frame a rung-dependent number of
visits (``AUTO_VISITS_BY_RUNG``).
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
# (docs/experiments.md, tune-cost; the script is in git at aafc279).
TUNE_STEP_COST: dict[str, float] = {"balanced": 1.0, "ssim": 1.0, "psnr": 0.85}
COST_TUNE = "balanced"  # the tune the presets are priced at unless told (the encoder's default)
MAX_STEP_PIXELS = 1_000_000  # at most this many pixels (batch x frame) in one step unless one
# frame is larger: the per-pixel cost rises once a step outgrows the caches, and small batches
# fit better at equal compute anyway
MIN_STEPS = 10  # a GOP so small that its budget buys fewer steps still gets these, as long
MIN_STEPS_SECONDS = 2.0  # as they cost at most this (a lone 1080p frame keeps its budget)
# A GOP is budgeted as at least this many megapixels: a 64x48 clip of 16 frames (0.05 MP) got
# 29 steps at `medium`, too few to draw anything (a red/blue/grey clip decoded grey-purple at
# 8.6 dB; 212 steps from coarser quantization steps, metanerv.fit.start_step_factor: 33.4 dB in
# 453 B, docs/experiments.md 2026-12-08). Such a GOP now gets what a QCIF GOP of 14 frames
# gets (about 3 s at `medium`); larger GOPs keep their budget.
MIN_BUDGET_MP = 0.35
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
    output's megapixels (at least ``MIN_BUDGET_MP``), a step costs what a step at the coded
    size of the fit's ``tune`` costs (``TUNE_STEP_COST``).

    Deterministic (a pure function of its arguments). A slower preset never gets fewer frame
    visits (``steps * batch``) than a faster one for the same GOP.
    """
    spec = check_preset(preset)
    width, height = _positive_int(width, "width"), _positive_int(height, "height")
    frames, stride = _positive_int(frames, "GOP frame count"), _positive_int(stride, "stride")
    ch, cw = coded_hw or (height, width)
    frame_px = padded_pixels(_positive_int(cw, "coded width"), _positive_int(ch, "coded height"), stride)
    mp = width * height * frames / 1e6
    budget_mp = max(mp, MIN_BUDGET_MP)
    visits = 0  # the previous (faster) preset's steps * batch: never fewer for a slower one
    for name in PRESET_NAMES:  # walk up to this preset
        s = PRESETS[name]
        batch = max(1, min(s.batch, frames, MAX_STEP_PIXELS // frame_px))
        cost = step_seconds(batch, frame_px, tune)
        floor = max(1, min(MIN_STEPS, math.floor(MIN_STEPS_SECONDS / cost)))
        steps = max(floor, math.floor(s.fit_seconds_per_mp * budget_mp / cost), -(-visits // batch))
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
