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
    steps: int


LADDER: dict[int, Rung] = {
    1: Rung(bits=5, prune=0.6, steps=600),
    2: Rung(bits=6, prune=0.4, steps=600),
    3: Rung(bits=6, prune=0.2, steps=600),
    4: Rung(bits=7, prune=0.1, steps=800),
    5: Rung(bits=8, prune=0.0, steps=800),
}
QUALITY_LEVELS: list[int] = sorted(LADDER)
DEFAULT_QUALITY = 3
DEFAULT_GOP = 120
