"""Global magnitude pruning of the coded residuals (weights, or deltas from the init).

A pruned entry's residual is zero: with delta coding it returns to its init value, without
one it becomes zero. Zeros are the most frequent symbol and cost almost nothing after
entropy coding.
"""
from __future__ import annotations

import torch
from torch import Tensor


def global_magnitude_masks(residuals: dict[str, Tensor], ratio: float) -> dict[str, Tensor]:
    """Keep-masks (float 0/1) dropping the ``ratio`` smallest |residual| entries overall."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"prune ratio {ratio} must be in [0, 1)")
    if ratio == 0.0:
        return {k: torch.ones_like(v) for k, v in residuals.items()}
    mags = torch.cat([v.detach().abs().flatten() for v in residuals.values()])
    k = int(ratio * mags.numel())
    if k == 0:
        return {k_: torch.ones_like(v) for k_, v in residuals.items()}
    threshold = torch.kthvalue(mags, k).values
    return {k_: (v.detach().abs() > threshold).to(v.dtype) for k_, v in residuals.items()}
