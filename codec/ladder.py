"""The quality ladder: ``-q N`` picks the rate weight ``lam`` of the fit.

Rate is traded by rate-distortion optimisation (``distortion + lam * bits per pixel``), not by
pruning ratios or bit depths: every rung is a distinct point the fit chose for its ``lam``.
Rungs are spaced by a factor of ~2.2 in ``lam``, which moves the rate by roughly 1.5x per rung
on the bench clips (benchmarks/README.md, rd-v2). ``--bpp`` replaces the fixed ``lam`` with
one the fit steers towards a target rate.
"""
from __future__ import annotations

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
DEFAULT_STEPS = 300  # the rd-v2 benchmark's --steps; the encoder's steps come from codec.presets
QUALITY_LEVELS: list[int] = sorted(LADDER)
DEFAULT_QUALITY = 5
DEFAULT_GOP = 120
# Rungs fitted together share the schedule's stable phase (the first 1 - decay_fraction of the
# steps, at the smallest of their lam) when the decay phase has at least
# codec.encoder.MIN_SHARED_DECAY_STEPS steps; each runs the decay phase alone with its own lam,
# so k rungs cost 0.6 + 0.4 k fits instead of k. Shorter fits give each rung a fit of its own.
