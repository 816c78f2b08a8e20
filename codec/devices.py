"""Where the work runs: the one place that turns ``--device`` into a torch device."""
from __future__ import annotations

import os

import torch

from nervcore.errors import NervcError


def pick_device(device: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu`` or ``cuda``; an unknown name or
    ``cuda`` without CUDA is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise NervcError("--device cuda requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise NervcError(f"unknown device {device!r} (auto, cpu or cuda)")
    return torch.device(device)


def use_local_rank_gpu(device: torch.device) -> None:
    """Under torchrun, a CUDA rank fits on its own GPU (``LOCAL_RANK``, modulo the GPUs seen)."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
