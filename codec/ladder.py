"""The quality ladder: ``-q N`` picks quantization bits, prune ratio and training steps.

All rungs share one architecture (``NeRVConfig()``, the shape the shipped meta-init has), so
every rung can start from the meta-learned init; rate is traded through bits and pruning.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rung:
    bits: int
    prune: float


# Rungs differ only after fine-tuning, so one fit serves every rung (``encode_ladder``).
LADDER: dict[int, Rung] = {
    1: Rung(bits=5, prune=0.6),
    2: Rung(bits=6, prune=0.4),
    3: Rung(bits=6, prune=0.2),
    4: Rung(bits=7, prune=0.1),
    5: Rung(bits=8, prune=0.0),
}
DEFAULT_STEPS = 600
QUALITY_LEVELS: list[int] = sorted(LADDER)
DEFAULT_QUALITY = 3
DEFAULT_GOP = 120
