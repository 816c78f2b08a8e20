"""The quality ladder: ``-q N`` picks the rate weight ``lam`` of the fit.

Rate is traded by rate-distortion optimisation (``distortion + lam * bits per pixel``), not by
pruning ratios or bit depths: every rung is a distinct point the fit chose for its ``lam``.
Rungs are spaced by a factor of ~2.2 in ``lam``, which moves the rate by roughly 1.5x per rung
on the bench clips (docs/benchmarks.md, rd-v2). ``--bpp`` replaces the fixed ``lam`` with
one the fit steers towards a target rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rung:
    lam: float


LADDER: dict[int, Rung] = {
    1: Rung(lam=16.0),
    2: Rung(lam=7.0),
    3: Rung(lam=3.2),
    4: Rung(lam=1.4),
    5: Rung(lam=0.64),
    6: Rung(lam=0.29),
    7: Rung(lam=0.13),
    8: Rung(lam=0.06),
}
QUALITY_LEVELS: list[int] = sorted(LADDER)
DEFAULT_QUALITY = 5
DEFAULT_GOP = 120

# The GOP network's temporal capacity (bitstream 4): from rung ANCHOR_RUNG up its grid gets an
# anchor every other frame, the init's few anchors resampled exactly onto them, so the fit starts
# from the init's very picture and the rate term decides which anchors carry detail. At `medium`
# on three train clips (32 frames; docs/experiments.md, 2026-12-07 "v3 representation"): one
# anchor per frame paid at -q 5 and 7 on two clips (+0.7 to +2.1 dB, above the 4-anchor curve)
# and cost on the third (riverboat, -0.2 to -0.5 dB); one every other frame drew the same pictures
# with 0-17 % fewer bytes. At -q 3 and 4 the extra anchors cost 0.1-0.3 dB: those rungs keep
# the init's anchors.
ANCHORS_PER_FRAME = 0.5
ANCHOR_RUNG = 5
MAX_GOP_ANCHORS = 255  # bitstreams.format.MAX_ANCHORS (a u8 in the header)


def rung_anchors_per_frame(quality: int) -> float:
    """Temporal anchors per frame a rung's GOP grid gets (0: the init's own anchors)."""
    return ANCHORS_PER_FRAME if quality >= ANCHOR_RUNG else 0.0


def gop_anchors(frames: int, init_anchors: int, per_frame: float = ANCHORS_PER_FRAME) -> int:
    """Grid anchors of a GOP of ``frames`` frames: at least ``per_frame`` per frame (0: the
    init's), and ``1 + m (init_anchors - 1)`` so every init anchor falls on one (the init's
    function exactly)."""
    want = max(1, math.ceil(frames * per_frame))
    if want <= init_anchors:
        return init_anchors
    if init_anchors <= 1:  # one anchor is a constant: any count keeps it
        return min(want, MAX_GOP_ANCHORS)
    step = init_anchors - 1
    a = 1 + step * math.ceil((want - 1) / step)
    return a if a <= MAX_GOP_ANCHORS else 1 + step * ((MAX_GOP_ANCHORS - 1) // step)
# Rungs fitted together share the schedule's stable phase (the first 1 - decay_fraction of the
# steps, at the smallest of their lam) when the decay phase has at least
# codec.encoder.MIN_SHARED_DECAY_STEPS steps; each runs the decay phase alone with its own lam,
# so k rungs cost 0.6 + 0.4 k fits instead of k. Shorter fits give each rung a fit of its own.

# A short fit cannot turn the bytes of a small lam into picture: at `medium` (about 6 frame
# visits per frame) the bench ladders were flat above q5 (q6-q8 within 0.3 dB on 6 of 7 clips
# for 1.5-2.5x q5's bytes, benchmarks/results/v2-medium/), while 300 steps of 8 frames (~38
# visits per frame) still gain up to q7. On train/ clips at faster/fast/medium/slow
# (benchmarks/results/lam-floor/) the last rung that still buys picture (>= 0.3 dB and >= 1 dB
# per e-fold of extra bytes over the best cheaper rung) sits at lam ~ FLOOR_LAM_VISITS / (frame
# visits per frame): the geometric mean over 4 clips was 3.2-4.7 at every preset; per clip it
# varies ~4x either way. A -q rung below that
# floor is fitted as the ladder rung nearest the floor (in log lam), so at a short budget the
# top rungs become exact copies of a lower one (the encoder fits them once) instead of paying
# for bytes the fit cannot use. An explicit --lam or --bpp is never raised.
# Remeasured on 2026-11-29 with the current entropy coder and coded sizes
# (benchmarks/results/top-rung/): with 4.0 the rung above the floor still bought 0.93-1.31 dB
# per e-fold at `medium` and 1.00-1.44 at `fast` on five train clips (mean 1.12 / 1.21, the
# threshold above is 1), and letting it keep its lam wrote -7.8 % / -2.7 % BD-rate; so 1.5.
FLOOR_LAM_VISITS = 1.5
# A rung's rate weight counts bits per *source* pixel: a GOP coded at 1/f of the source's pixels
# fits with lam * REF_REDUCTION / f per coded pixel, so -q N means one rate-quality trade
# whatever size `--scale auto` picks. Counted per coded pixel, -q 5 wrote 0.0034 bpp on
# 832x480 (f = 16) and 0.0185 on QCIF (f = 2.56); per source pixel it lands within 1.7x on
# five train clips of 320x180-640x480 at an unchanged rate-distortion curve
# (benchmarks/results/rate-per-pixel/). REF_REDUCTION is the reduction at which a rung keeps
# the lam of the ladder above: 4, about what the top rungs' larger coded sizes reduce the bench
# and train clips by at `medium` (the middle rungs: 4-16), so the top of the ladder stays where
# it was and the middle rungs of large clips get the bytes they lacked (at 8 the tops fell
# 0.2-0.5 dB, benchmarks/results/v6-srcpx/README.md).
REF_REDUCTION = 4.0


def rung_weight(lam: float, coded_share: float) -> float:
    """The per-coded-pixel rate weight of rung weight ``lam`` for a GOP coded at
    ``coded_share`` of the source's pixels (1: the source size)."""
    return lam * REF_REDUCTION * coded_share


def _weight(lam: float, coded_share: float | None) -> float:
    """``lam`` as fitted at ``coded_share`` (:func:`rung_weight`); None: the ladder's own units."""
    return lam if coded_share is None else rung_weight(lam, coded_share)


def lam_floor(visits_per_frame: float, coded_share: float | None = None) -> float:
    """The ladder lam closest (in log) to the smallest rate weight a fit of
    ``visits_per_frame`` (steps x batch / frames) still turns into picture; 0 for a fit of no
    steps (nothing to fit: every rung's lam stands). With ``coded_share`` the ladder's weights
    as a GOP coded at that share of the source's pixels fits them (:func:`rung_weight`), so a
    raised rung takes a real rung's weight."""
    if visits_per_frame <= 0:
        return 0.0
    want = math.log(FLOOR_LAM_VISITS / visits_per_frame)
    return min((_weight(r.lam, coded_share) for r in LADDER.values()), key=lambda lam: abs(math.log(lam) - want))


def floor_rung(visits_per_frame: float, coded_share: float | None = None) -> int:
    """The rung every higher one is fitted as at this budget (the top rung when none is raised)."""
    floor = lam_floor(visits_per_frame, coded_share)
    return max(q for q, r in LADDER.items() if _weight(r.lam, coded_share) >= floor) if floor else max(LADDER)


def rung_lam(quality: int, visits_per_frame: float, coded_share: float | None = None) -> float:
    """The rate weight rung ``quality`` fits with at a budget of ``visits_per_frame`` (per coded
    pixel of a GOP coded at ``coded_share`` of the source; None: the ladder's own weights)."""
    return max(_weight(LADDER[quality].lam, coded_share), lam_floor(visits_per_frame, coded_share))


def fitted_rung(quality: int, lam: float, coded_share: float) -> int | None:
    """The rung whose weight a ``-q quality`` fit ended with (``lam``, per coded pixel at
    ``coded_share``) when the budget's floor raised it; None when it kept its own."""
    if lam <= rung_weight(LADDER[quality].lam, coded_share) * (1 + 1e-6):
        return None
    return next((q for q, r in LADDER.items() if abs(rung_weight(r.lam, coded_share) - lam) <= 1e-6 * lam), None)
