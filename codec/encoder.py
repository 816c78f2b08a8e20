"""Video -> ``.nerv``: the encoder's public API, and the order in which its parts run.

Per GOP a network is fitted from the init by rate-distortion optimisation, then its integer
levels are entropy-coded. The parts, each in its own module:

* :mod:`codec.options`: the one options object (``EncodeOptions``) and its checks;
* :mod:`codec.plan`: the GOPs, the coded size (decided once), the rungs, the header;
* :mod:`codec.gopfit`: the GOP fit (rungs sharing the schedule's stable phase, see
  ``metanerv.schedule.wsd_lr``, when the fit is long enough), on :mod:`codec.finetune`;
* :mod:`codec.rate_control`: ``--bpp``;
* :mod:`codec.gopcode`: entropy coding, the GOP's section, the decoder's frames measured;
* :mod:`codec.parallel`: worker processes and torch.distributed ranks, one wire format;
* :mod:`codec.writer`: writing the files and verifying them.

The encode streams: the source is decoded one GOP at a time (``VideoSource.chunks``), each GOP
is fitted, coded and measured while its frames are in memory, and its section is appended to
the output. Memory holds one GOP (about ``jobs`` with ``--jobs``), never the whole video. The
reported size is the written file's length and the reported PSNR that of the frames the decoder
makes from it: nothing is estimated. GOPs are independent, so worker processes or ranks can fit
them side by side; the file is the same bytes either way (GOP ``i`` is seeded with ``seed + i``).
For the same reason a stopped encode can go on from the GOPs it finished (``--resume``,
:mod:`codec.resume`): sections go to ``OUT.nerv.partial`` with a journal beside it, and the
finished file is renamed into place.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from codec.devices import pick_device, use_local_rank_gpu
from codec.inits import random_init_config, resolve_init
from codec.ladder import DEFAULT_QUALITY, fitted_rung
from codec.metrics import psnr_of_mse
from codec.options import EncodeOptions
from codec.parallel import RankLink, coded_gops, gather_gops, send_gops, start_distributed
from codec.plan import coded_size_groups, gop_length, make_header, make_plan
from codec.presets import DEFAULT_PRESET, predict_seconds
from codec.resume import input_identity, job_record, open_outputs, resumable
from codec.writer import write_outputs
from metanerv.init_file import InitFile
from metanerv.model import NeRVConfig
from nervcore.errors import NervcError
from nervcore.messages import say
from nervcore.video_io import Video, VideoSource, as_source, check_output


@dataclass
class EncodeResult:
    path: str
    num_bytes: int
    width: int
    height: int
    num_frames: int
    fps: Fraction
    psnr: float  # RGB, 8-bit, mean of per-frame MSE, of the decoded file
    encode_seconds: float
    init: str
    quality: int | None = None
    estimated_bytes: int = 0  # payload bits the entropy models predict, plus the exact overhead
    lam: float = 0.0  # the rate weight the fit ended with
    preset: str = DEFAULT_PRESET
    steps: int = 0  # fitting steps of this output, summed over its GOPs
    total_seconds: float = 0.0  # from the start until this output was written and verified
    coded_width: int = 0  # the size the networks draw (the decoder resizes to width x height)
    coded_height: int = 0
    rollbacks: int = 0  # times the divergence guard returned this output's fits to a good state (all GOPs)
    predicted_seconds: float | None = None  # the preset's cost model (one thread); None: steps/batch/lr given
    fitted_as: int | None = None  # the rung a -q fit was raised to by its budget's floor (codec.ladder)
    kept_gops: int = 0  # GOPs a --resume kept from the stopped encode's partial file (codec.resume)

    @property
    def bpp(self) -> float:
        return 8.0 * self.num_bytes / (self.width * self.height * self.num_frames)


def encode_ladder(source: str | os.PathLike | Video | VideoSource, outputs: dict[int, str | os.PathLike],
                  options: EncodeOptions | None = None, **fields) -> dict[int, EncodeResult]:
    """Encode ``source`` once per quality in ``outputs`` ({quality: path}) with ``options``
    (:class:`codec.options.EncodeOptions`; keyword ``fields`` replace its fields).

    With several rungs, they share the stable phase of the fitting schedule (at the smallest
    of their rate weights) and each runs the decay phase with its own, when that phase has
    ``codec.gopfit.MIN_SHARED_DECAY_STEPS`` steps (else each rung is fitted on its own);
    ``bpp`` (one output only) steers the rate weight to hit that many bits per pixel. With
    ``scale="auto"`` each rung's visit target picks its coded size
    (``codec.presets.auto_visits``: lower rungs code fewer pixels), so the rungs of one call
    may be fitted at different sizes (one encode per size).

    ``source`` is a path (``frames``, ``size`` and ``fps`` apply to it), a decoded ``Video`` or
    a ``VideoSource``; it is read one GOP at a time. ``distributed``: every rank of a
    torch.distributed job calls this with the same arguments, rank 0 writes the files and gets
    the results, the other ranks get ``{}``. The files are the same bytes in every case.
    """
    options = replace(options or EncodeOptions(), **fields)
    qualities = list(outputs)
    options.check(qualities)
    link, stop = start_distributed() if options.distributed else (None, lambda: None)
    try:
        rank, world = (link.rank, link.world) if link else (0, 1)
        paths = ({q: check_output(p, options.overwrite, inputs=_input_paths(source)) for q, p in outputs.items()}
                 if rank == 0 else {})
        if options.resume and not resumable(source):
            raise NervcError("--resume needs an input file or PNG folder (standard input and frames in "
                             "memory cannot be checked against the stopped encode)")
        dev = pick_device(options.device)
        if link:
            use_local_rank_gpu(dev)
        src = as_source(source, size=options.size, fps=options.fps, frames=options.frames)
        for level, text in src.notes if rank == 0 else ():  # what reading the input loses, once
            say(level, text)
        if src.num_frames is None and world > 1:
            raise NervcError(f"{src.path}: --distributed needs a source whose frame count is known "
                             "before it is decoded")
        identity = input_identity(source, src.num_frames is not None) if rank == 0 else None
        init_file = resolve_init(options.init)
        config = init_file.config if init_file else random_init_config()
        results: dict[int, EncodeResult] = {}
        for group, coded, per_frame in coded_size_groups(src, qualities, options, config):
            results.update(_encode(src, {q: paths[q] for q in group} if rank == 0 else {}, group, coded,
                                   options, init_file, config, link, per_frame, identity))
        return results
    finally:
        stop()


def _encode(src: VideoSource, paths: dict[int, os.PathLike], qualities: list[int], coded: tuple[int, int],
            options: EncodeOptions, init_file: InitFile | None, config: NeRVConfig,
            link: RankLink | None, anchors_per_frame: float = 0.0,
            identity: dict | None = None) -> dict[int, EncodeResult]:
    """One encode of the rungs ``qualities`` at one coded size (width, height) and one number
    of temporal anchors per frame. ``identity``: the input's (``codec.resume.input_identity``),
    when the encode can be resumed."""
    rank, world = (link.rank, link.world) if link else (0, 1)
    start = time.perf_counter()
    known = src.num_frames is not None
    gop_frames = gop_length(src, options.gop)
    num_gops = -(-src.num_frames // gop_frames) if known else None
    header = make_header(src, gop_frames, config, init_file, coded, anchors_per_frame)
    plan = make_plan(header, known, qualities, options, init_file)
    progress = options.progress and rank == 0
    records = None  # what each output's partial file must match to be resumed (codec.resume)
    if identity is not None and paths:
        device = pick_device(options.device).type
        records = {q: job_record(identity, options, q, qualities, header, device) for q in paths}
    kept, open_writer = open_outputs(paths, header, records, options.resume)
    own = coded_gops(src, gop_frames, plan, options.jobs, rank, world, num_gops, progress and options.jobs == 1,
                     kept)
    try:  # closing the generators stops any worker processes at once on an error
        if rank != 0:
            send_gops(own, link)
            return {}
        stream = gather_gops(own, link, num_gops, gop_frames, src.num_frames, qualities)
        try:
            w = write_outputs(stream, paths, header, known, src.path, num_gops, progress, start, open_writer)
        finally:
            stream.close()
    finally:
        own.close()

    full, rest = divmod(w.frames, gop_frames)
    fit_steps = full * plan.gop_steps(gop_frames) + (plan.gop_steps(rest) if rest else 0)
    predicted = None
    if all(v is None for v in options.given.values()):
        predicted = predict_seconds(options.preset, src.width, src.height, w.frames, min(gop_frames, w.frames),
                                    config.total_stride, plan.coded_hw, options.tune)
    total = time.perf_counter() - start
    results = {}
    for q, path in paths.items():
        if w.sizes[q] != os.path.getsize(path):
            raise NervcError("internal error: written size differs from the file size")
        overhead = w.sizes[q] - 4 * w.words[q]  # all but the ANS words
        raised = fitted_rung(q, w.lams[q], plan.coded_share) if options.budget_floor else None
        results[q] = EncodeResult(str(path), w.sizes[q], src.width, src.height, w.frames, src.fps,
                                  psnr_of_mse(np.concatenate(w.mses[q])), w.seconds,
                                  init_file.name if init_file else "random", q,
                                  overhead + int(math.ceil(w.bits[q] / 8)), w.lams[q], options.preset,
                                  fit_steps, total, plan.coded_width, plan.coded_height, w.rollbacks[q],
                                  predicted, raised, len(kept))
    return results


def encode(source: str | os.PathLike | Video | VideoSource, output: str | os.PathLike,
           options: EncodeOptions | None = None, *, quality: int = DEFAULT_QUALITY, **fields) -> EncodeResult | None:
    """Encode ``source`` into the ``.nerv`` file ``output`` at rung ``quality``: ``options``
    and ``fields`` as in :func:`encode_ladder` (on a torch.distributed rank other than 0 this
    returns None)."""
    return encode_ladder(source, {quality: output}, options, **fields).get(quality)


def _input_paths(source) -> list:
    """The input's path (a path or a ``VideoSource``'s), so no output can overwrite it."""
    if isinstance(source, (str, os.PathLike)):
        return [source]
    path = getattr(source, "path", None)
    return [path] if isinstance(path, str) else []
