"""Temporal guidance: how many frames a meta-training task holds as training progresses.

Fitting two frames is an easy task and fitting a whole clip a hard one; starting meta-training
on short tasks and lengthening them lets the init first learn the spatial prior and then the
temporal one (MetaNeRV's progressive strategy). ``progress`` is the fraction of the training
budget spent (steps or minutes, whichever is further along), so the schedule works for either
kind of budget and survives a resume.

``wsd_lr`` is the step-size schedule of the rate-distortion fit (warmup, stable, cosine decay),
read by :mod:`metanerv.fit` alone: the encoder's GOP fit (``codec.finetune``) and meta-training's
coded inner loop (``metanerv.maml.coded_adapt``) both run that fit.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FrameSchedule:
    """Frames per task ramping from ``start`` to ``end`` over the first ``ramp`` of training.

    ``shape`` is ``"linear"`` or ``"step"`` (equal-length plateaus at doubling counts).
    With ``enabled=False`` every task has ``end`` frames (the ablation).
    """

    start: int = 2
    end: int = 8
    ramp: float = 0.6
    shape: str = "linear"
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.start < 1 or self.end < self.start:
            raise ValueError(f"need 1 <= start <= end, got start={self.start} end={self.end}")
        if not 0.0 < self.ramp <= 1.0:
            raise ValueError(f"ramp must be in (0, 1], got {self.ramp}")
        if self.shape not in ("linear", "step"):
            raise ValueError(f"shape must be 'linear' or 'step', got {self.shape!r}")

    def frames_at(self, progress: float) -> int:
        """Frames per task at ``progress`` in [0, 1] (clamped)."""
        if not self.enabled:
            return self.end
        p = min(max(progress / self.ramp, 0.0), 1.0)
        if self.shape == "linear":
            return int(round(self.start + p * (self.end - self.start)))
        levels = [self.start]
        while levels[-1] < self.end:
            levels.append(min(levels[-1] * 2, self.end))
        return levels[min(int(p * len(levels)), len(levels) - 1)]

    def to_dict(self) -> dict:
        return asdict(self)


def wsd_lr(step: int, total: int, peak: float, warmup: int, decay_from: int) -> float:
    """Warmup, stable at ``peak`` until ``decay_from``, then a cosine down to zero at ``total``.

    The stable part is what ladder rungs share; each rung's decay is its own, starting at the
    full step size, so a branch can still move far from the shared state.
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    if step < decay_from:
        return peak
    progress = (step - decay_from) / max(total - decay_from, 1)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
