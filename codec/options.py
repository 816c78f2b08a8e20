"""The encoder's options: one object (``EncodeOptions``) and the one place they are checked.

``nervc encode`` builds it from its flags, the Python API takes it (or its fields as keywords)
in ``codec.encoder.encode_ladder``; :meth:`EncodeOptions.check` raises the user error of a bad
value before any work, with the flag's name in the message.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from codec.devices import pick_device
from codec.ladder import LADDER
from codec.presets import DEFAULT_PRESET, check_preset, coded_size
from metanerv.fit import DEFAULT_TUNE, DISTORTIONS
from metanerv.init_file import InitFile
from nervcore.errors import NervcError

MAX_BPP = 24  # --bpp's upper bound: 8 bits a channel


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode (every output of one call shares them; each output picks its -q rung)."""

    preset: str = DEFAULT_PRESET  # sets each GOP's steps, batch and lr from its size (codec.presets)
    steps: int | None = None  # fitting steps per GOP (wins over the preset's)
    batch: int | None = None  # frames per fitting step (wins over the preset's)
    lr: float | None = None  # peak Adam step of the residuals (wins over the preset's)
    bpp: float | None = None  # target bits per pixel (one output only): the fit's rate weight is searched
    lam: float | None = None  # the fit's rate weight instead of the -q rung's
    tune: str = DEFAULT_TUNE  # what the fit minimises besides the rate (metanerv.fit.DISTORTIONS)
    init: str | os.PathLike | InitFile | None = "default"  # init file: "default", "random", a path
    meta_lr: bool = True  # use the init's Meta-SGD step sizes
    latent_encoder: str | os.PathLike | None = None  # start each GOP's grid from its proposal (metanerv.latent)
    gop: int | None = None  # frames per network (default codec.ladder.DEFAULT_GOP)
    scale: int | str = "auto"  # networks draw frames this many times smaller per side; "auto" chooses
    frames: slice | None = None  # frame range of a path source
    size: tuple[int, int] | None = None  # (width, height) of a raw YUV source
    fps: Fraction | None = None  # frame rate of a raw YUV or PNG source
    seed: int = 0  # GOP i is fitted with seed + i
    device: str = "auto"  # where the fit runs (codec.devices.pick_device)
    jobs: int = 1  # GOPs fitted at once in worker processes (same bytes for any number)
    distributed: bool = False  # split the GOPs over torch.distributed ranks (rank 0 writes)
    progress: bool = True  # progress bars
    overwrite: bool = False  # replace existing outputs
    resume: bool = False  # continue from the GOPs a stopped encode left in OUT.partial (codec.resume)

    @property
    def given(self) -> dict[str, Any]:
        """The fit's steps, batch and lr as the caller fixed them (None: the preset's)."""
        return {"steps": self.steps, "batch": self.batch, "lr": self.lr}

    @property
    def budget_floor(self) -> bool:
        """Whether each rung's rate weight is raised to the floor of the fit's budget
        (``codec.ladder.lam_floor``): only for -q rungs, never for --lam or --bpp."""
        return self.lam is None and self.bpp is None

    def check(self, qualities: list[int] | tuple[int, ...] = ()) -> None:
        """Raise NervcError for the first bad value, naming its flag; ``qualities`` are the
        rungs of the outputs asked for."""
        if not qualities:
            raise NervcError("no output requested")
        for q in qualities:
            if q not in LADDER:
                raise NervcError(f"quality {q} not in {sorted(LADDER)}")
        if self.bpp is not None and len(qualities) > 1:
            raise NervcError("--bpp sets one rate: ask for one output")
        check_preset(self.preset)
        if self.tune not in DISTORTIONS:
            raise NervcError(f"--tune must be one of {', '.join(DISTORTIONS)}")
        check_bound("steps", self.steps, 0)
        check_bound("batch", self.batch, 1)
        check_bound("lr", self.lr, 0, low_allowed=False)
        check_bound("bpp", self.bpp, 0, MAX_BPP, low_allowed=False)
        check_bound("lam", self.lam, 0)
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int):
            raise NervcError(f"--jobs {self.jobs!r}: must be a whole number")
        check_bound("jobs", self.jobs, 1)
        check_bound("gop", self.gop, 1)
        if self.resume and self.distributed:
            raise NervcError("--resume does not combine with --distributed: resume without it (the bytes "
                             "do not depend on how the GOPs are split; --jobs N fits them in parallel)")
        if self.scale != "auto":
            coded_size(1, 1, self.scale)  # raises for a bad --scale
        pick_device(self.device)


def check_bound(flag: str, value: float | None, low: float, high: float = math.inf, low_allowed: bool = True,
                shown: Any = None) -> None:
    """``value`` (None: not given) is finite, at least ``low`` (more than it unless
    ``low_allowed``) and at most ``high``; else the user error naming ``--flag`` and ``shown``
    (default ``value``: the option as given, e.g. a whole list). Every bound of every nervc
    command is checked here (``codec.cli._check_bounds``)."""
    if value is None:
        return
    if not (math.isfinite(value) and (value >= low if low_allowed else value > low) and value <= high):
        what = f"{'at least' if low_allowed else 'more than'} {low:g}"
        if high != math.inf:
            what += f" and at most {high:g}"
        raise NervcError(f"--{flag} {value if shown is None else shown!r}: must be {what}")
