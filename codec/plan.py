"""Planning an encode: its GOPs, the coded size (decided once, here), its rungs and header.

:func:`coded_size_groups` splits the outputs of one call by the size their networks draw
(``--scale auto`` picks it per rung's visit target, ``codec.presets.auto_visits``); each group
is one encode with one :class:`GopPlan`: what every GOP of it shares, and each GOP's fit
settings per rung (:meth:`GopPlan.gop_settings`: the preset's schedule for the GOP's size,
a -q rung's rate weight counted per source pixel and raised to the floor of that budget).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from bitstreams import BitstreamError, Header
from bitstreams.format import MAX_DIM, check_header, encode_header, param_shapes
from codec.ladder import DEFAULT_GOP, LADDER, gop_anchors, lam_floor, rung_anchors_per_frame, rung_weight
from codec.options import EncodeOptions
from codec.presets import auto_coded_size, auto_visits, coded_share, coded_size, fit_overrides
from metanerv.fit import FitSettings
from metanerv.init_file import FIT_LR_CLAMP, InitFile, lr_scales
from metanerv.latent import LatentEncoder, load_latent_encoder
from metanerv.model import NeRVConfig, grid_size_for, init_state_for
from nervcore.errors import NervcError
from nervcore.video_io import VideoSource


def gop_length(src: VideoSource, gop: int | None) -> int:
    """Frames per GOP: ``gop`` (default ``DEFAULT_GOP``), at most the source's length when known."""
    return min(gop or DEFAULT_GOP, src.num_frames) if src.num_frames is not None else gop or DEFAULT_GOP


def coded_size_groups(src: VideoSource, qualities: list[int], options: EncodeOptions,
                      config: NeRVConfig) -> list[tuple[list[int], tuple[int, int], float]]:
    """The rungs ``qualities`` grouped by the (width, height) their networks draw and by their
    temporal anchors per frame (``codec.ladder.rung_anchors_per_frame``): the size is
    ``--scale N``'s, or with ``--scale auto`` each rung's visit target picks one; rungs that
    land on the same size and anchors stay together (they share fits)."""
    gop_frames = gop_length(src, options.gop)
    groups: dict[tuple[tuple[int, int], float], list[int]] = {}
    for q in sorted(qualities):
        if options.scale != "auto":
            wh = coded_size(src.width, src.height, options.scale)
        elif gop_frames < 1:  # an empty source: the writer reports it
            wh = (src.width, src.height)
        else:
            wh = auto_coded_size(options.preset, src.width, src.height, gop_frames, config.total_stride,
                                 options.given, visits=auto_visits(q), tune=options.tune)
        groups.setdefault((wh, rung_anchors_per_frame(q)), []).append(q)
    return [(group, wh, per_frame) for (wh, per_frame), group in groups.items()]


def make_header(src: VideoSource, gop_frames: int, config: NeRVConfig, init_file: InitFile | None,
                coded: tuple[int, int], anchors_per_frame: float = 0.0) -> Header:
    """The file's header. Provisional counts when the source does not know its length: the
    writer rewrites them when the last GOP is in (the header's length does not depend on them).
    A video the decoder would refuse (``bitstreams.format.check_header``) is a user error."""
    if src.width > MAX_DIM or src.height > MAX_DIM:
        raise NervcError(f"frame size {src.width}x{src.height} exceeds {MAX_DIM}")
    known = src.num_frames is not None
    config = replace(config, grid_anchors=gop_anchors(gop_frames, config.grid_anchors, anchors_per_frame))
    header = Header(src.width, src.height, src.num_frames if known else gop_frames, src.fps, gop_frames,
                    -(-src.num_frames // gop_frames) if known else 1, config,
                    init_file.digest if init_file else bytes(16), coded)
    try:
        check_header(header)
    except BitstreamError as e:
        raise NervcError(f"cannot encode this video: {e}") from None
    return header


@dataclass
class GopPlan:
    """What every GOP of one encode shares. Plain data (numbers, numpy arrays, dataclasses of
    them), so worker processes are handed it as is."""

    config: NeRVConfig  # the model the fit trains and the decoder rebuilds
    grid_hw: tuple[int, int]
    width: int
    height: int
    lams: dict[int, float]  # per quality rung: its rate weight (-q's, or --lam)
    options: EncodeOptions  # steps/batch/lr given, preset, seed, tune, --bpp, device
    init: dict[str, np.ndarray] | None = None  # the init file's tensors, float32
    base: dict[str, np.ndarray] | None = None  # the init with the video's grid: delta coding's base
    lr_scales: dict[str, float] | None = None  # the init's Meta-SGD step sizes (None: plain Adam)
    header_bpp: float = 0.0  # the file header's share of --bpp (0 when the length is unknown)
    coded_width: int = 0  # the size the networks draw (0: the output size)
    coded_height: int = 0
    latent: LatentEncoder | None = None  # proposes each GOP's starting grid (metanerv.latent)

    def __post_init__(self) -> None:
        self.coded_width = int(self.coded_width or self.width)
        self.coded_height = int(self.coded_height or self.height)

    @property
    def coded_hw(self) -> tuple[int, int]:
        return (self.coded_height, self.coded_width)

    @property
    def coded_share(self) -> float:
        """Coded pixels per output pixel (1 when the networks draw the output size)."""
        return coded_share(self.width, self.height, self.coded_width, self.coded_height)

    def fit_schedule(self, frames: int) -> dict:
        """Steps, batch and lr of a GOP of ``frames`` frames: the preset's (``codec.presets``;
        the budget is the output's megapixels, the steps cost what the coded size costs), those
        the caller gave winning."""
        o = self.options
        given = {k: v for k, v in o.given.items() if v is not None}
        return {**fit_overrides(o.preset, self.width, self.height, frames, self.config.total_stride,
                                given=given, coded_hw=self.coded_hw, tune=o.tune), **given}

    def gop_steps(self, frames: int) -> int:
        """Fitting steps one rung of a GOP of ``frames`` frames runs."""
        return int(self.fit_schedule(frames)["steps"])

    def gop_settings(self, gi: int, frames: int) -> dict[int, FitSettings]:
        """Each rung's fit of GOP ``gi`` (``frames`` frames): the GOP's schedule, seed
        ``seed + gi``, and a -q rung's weight counted per source pixel
        (``codec.ladder.rung_weight`` of the coded share), then raised to the floor of the
        budget (``codec.ladder.lam_floor``)."""
        o, fit = self.options, self.fit_schedule(frames)
        out = {}
        for q, lam in self.lams.items():
            if o.budget_floor:
                floor = lam_floor(fit["steps"] * min(fit["batch"], frames) / frames, self.coded_share)
                lam = max(rung_weight(lam, self.coded_share), floor)
            out[q] = FitSettings(**fit, lam=lam, seed=o.seed + gi, distortion=o.tune, target_bpp=o.bpp,
                                 budget_floor=o.budget_floor, lr_scales=self.lr_scales)
        return out

    @staticmethod
    def _tensors(arrays: dict[str, np.ndarray] | None) -> dict[str, torch.Tensor] | None:
        return None if arrays is None else {k: torch.from_numpy(v) for k, v in arrays.items()}

    def init_tensors(self) -> dict[str, torch.Tensor] | None:
        return self._tensors(self.init)

    def base_tensors(self) -> dict[str, torch.Tensor] | None:
        return self._tensors(self.base)

    @property
    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return param_shapes(self.config, self.grid_hw)


def make_plan(header: Header, known: bool, qualities: list[int], options: EncodeOptions,
              init_file: InitFile | None) -> GopPlan:
    """The plan of the GOPs of the file ``header`` describes (``known``: whether its frame
    count is the source's, not a provisional one), for the rungs ``qualities``."""
    lams = {q: LADDER[q].lam if options.lam is None else options.lam for q in qualities}
    init_arrays = base_arrays = None
    if init_file:
        init_arrays = {k: v.detach().float().cpu().numpy() for k, v in init_file.state.items()}
        base_arrays = {k: v.numpy() for k, v in init_state_for(init_file.state, header.grid_hw,
                                                                header.config.grid_anchors).items()}
    scales = lr_scales(init_file, clamp=FIT_LR_CLAMP) if init_file and options.meta_lr else None
    header_bpp = 8 * len(encode_header(header)) / (header.num_frames * header.width * header.height) if known else 0.0
    latent = _latent_encoder(options.latent_encoder, init_file) if options.latent_encoder else None
    return GopPlan(header.config, header.grid_hw, header.width, header.height, lams, options, init_arrays,
                   base_arrays, scales or None, header_bpp, header.coded_width, header.coded_height, latent)


def _latent_encoder(path, init_file: InitFile | None) -> LatentEncoder:
    """The ``--latent-encoder`` file, refused unless it was trained for this encode's init (its
    proposals are changes to that init's grid)."""
    enc, digest = load_latent_encoder(path)
    if init_file is None or digest != init_file.digest.hex():
        have = init_file.short_id if init_file else "random"
        raise NervcError(f"{path}: this latent encoder was trained for init {digest[:16]}, "
                         f"not for this encode's init {have}")
    return enc
