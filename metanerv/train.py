"""``nervc meta-train DIR --out FILE``: meta-learn the NeRV initialization an encoder starts from.

Each outer step every process draws its own tasks (short random clips, see ``metanerv.tasks``),
adapts the shared init to each with a few inner steps (``metanerv.maml``) and computes a
meta-gradient; the meta-gradients are averaged across processes (torch.distributed: gloo on
CPU, nccl on GPU; launch with ``torchrun --nproc-per-node N -m metanerv.train ...``), clipped
and applied with Adam, so every process keeps identical parameters.

Spatial guidance (multi-resolution loss over every block's output) and temporal guidance (a
progressive number of frames per task) are on by default and can be switched off for ablations.
``--task-mix native:0.5,crop:0.3,down:0.2`` mixes full-resolution tasks (whole frames and
256-832 px crops of GOP spans, as the encoder fits them) into the small downscaled ones.
``--algo metasgd`` (second-order MAML with one learned step size per tensor, the same as
``--algo maml --learn-lr``) writes the learned step sizes into the init file (see
``metanerv.init_file.lr_scales``); so does any ``--learn-lr`` run.
``--inner-rate LO,HI`` makes the inner loop the encoder's own fit (``metanerv.maml.coded_adapt``):
quantized residuals from the init priced at a rate weight drawn log-uniformly from ``LO..HI``
(per coded pixel, as ``codec.ladder.rung_weight`` gives the encoder's), so the init learns from
the moves the encoder would store, not from an unconstrained fit.
Randomness for task ``k`` of process ``r`` at step ``s`` comes from ``default_rng([seed, r, s, k])``,
so a resumed run (``--resume``) draws exactly the tasks the uninterrupted run would have.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.func import functional_call
from tqdm import tqdm

from nervcore.errors import NervcError
from metanerv import maml, splits
from metanerv.checkpoint import load_checkpoint, optimizer_from_flat, optimizer_to_flat, save_checkpoint
from metanerv.init_file import FIT_LR_CLAMP, InitFile, load_init, lr_scales, save_init
from metanerv.losses import META_LOSSES, multiscale_loss, psnr, task_distortion
from metanerv.model import NeRV, NeRVConfig, build_model, decode_param_names, resize_grid
from metanerv.schedule import FrameSchedule
from metanerv.tasks import (DEFAULT_CROP_WIDTHS, DEFAULT_GOPS, DEFAULT_SIDES, Task, TaskSampler,
                            parse_task_mix)

ALGOS = ("maml", "fomaml", "reptile", "metasgd")
DEFAULT_SCALE_WEIGHTS = (0.1, 0.15, 0.25, 0.5)


def _csv_ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x.strip())


def _csv_floats(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in s.split(",") if x.strip())


def _task_mix(s: str) -> dict[str, float]:
    try:
        return parse_task_mix(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _hw(s: str) -> tuple[int, int]:
    h, w = s.lower().split("x")
    return int(h), int(w)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nervc meta-train",
                                description="Meta-learn a NeRV initialization from a folder of videos.")
    p.add_argument("data", metavar="DIR", help="folder of training videos")
    p.add_argument("--split", choices=splits.SPLITS, default="all",
                   help="which of DIR's videos to train on: all, meta (drop the held-back clips of "
                        "metanerv.splits, which every held-out measurement uses) or held")
    p.add_argument("--clips", type=int, default=None, metavar="N",
                   help="train on the first N clips of the split's fixed nested order (spread over "
                        "sources; N=8 is part of N=16): data-scaling runs")
    p.add_argument("--clip-seed", type=int, default=splits.SUBSET_SEED,
                   help="seed of the nested clip order (--clips)")
    p.add_argument("--out", required=True, help="init file to write (.safetensors)")
    g = p.add_argument_group("budget")
    g.add_argument("--steps", type=int, default=None, help="outer steps (total, across resumes)")
    g.add_argument("--minutes", type=float, default=None, help="wall-clock budget (total, across resumes)")
    g.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="end this session after N steps (checkpointed; --resume continues the same budget)")
    g = p.add_argument_group("algorithm")
    g.add_argument("--algo", choices=ALGOS, default="reptile")
    g.add_argument("--inner-steps", type=int, default=8)
    g.add_argument("--inner-lr", type=float, default=5e-3, help="inner step size (initial one if learned)")
    g.add_argument("--inner-opt", choices=maml.INNER_OPTS, default=None,
                   help="inner optimizer (default: adam for reptile, sgd for maml/fomaml)")
    g.add_argument("--learn-lr", action="store_true",
                   help="Meta-SGD: learn one step size per tensor (implied by --algo metasgd); "
                        "the learned step sizes are written into the init")
    g.add_argument("--loss", choices=META_LOSSES, default="ssim",
                   help="what each task fits: ssim (0.7 L1 + 0.3 (1 - SSIM)) or balanced (half that, "
                        "half a log-MSE term: the encoder's default --tune)")
    g.add_argument("--inner-rate", type=_csv_floats, default=None, metavar="LO,HI",
                   help="inner loop = the encoder's rate-distortion fit of quantized residuals, at a rate "
                        "weight (per coded pixel) drawn log-uniformly from LO..HI per task; reptile or "
                        "fomaml; uses the --start-from init's learned step sizes as the encoder does")
    g.add_argument("--rate-frames", type=int, default=60,
                   help="with --inner-rate: a task's bits are priced per pixel of a GOP this many frames "
                        "long (at least the task's own), as the encoder spreads them over its GOP")
    g.add_argument("--outer-lr", type=float, default=2e-3, help="Adam step size of the init")
    g.add_argument("--lr-lr", type=float, default=5e-3, help="Adam step size of the learned log step sizes")
    g.add_argument("--outer-decay", type=float, default=0.1,
                   help="outer step sizes follow a cosine from 1x down to this fraction of the budget's end (1: constant)")
    g.add_argument("--clip", type=float, default=1.0, help="meta-gradient L2 clip (0: none)")
    g.add_argument("--tasks-per-step", type=int, default=1, help="tasks per outer step per process")
    g = p.add_argument_group("guidance")
    g.add_argument("--spatial", action=argparse.BooleanOptionalAction, default=False,
                   help="spatial guidance: the multi-resolution loss over the decoder's stages "
                        "(off by default since 2026-11-28: at equal compute it did not earn its "
                        "place, docs/experiments.md 'guidance-c8'; --no-spatial: final-output loss only)")
    g.add_argument("--scale-weights", type=_csv_floats, default=DEFAULT_SCALE_WEIGHTS,
                   help="multi-resolution loss weights, coarsest first")
    g.add_argument("--no-temporal", action="store_true", help="every task has --frames frames")
    g.add_argument("--frames", type=int, default=32, help="frames per task at the end of the schedule")
    g.add_argument("--batch", type=int, default=8, help="frames per inner step (and per query)")
    g.add_argument("--frames-start", type=int, default=2, help="frames per task at the start")
    g.add_argument("--ramp", type=float, default=0.6, help="fraction of the budget the ramp takes")
    g = p.add_argument_group("tasks")
    g.add_argument("--task-mix", type=_task_mix, default="down:1", metavar="KIND:W,...",
                   help="weights of the task kinds down (small downscaled clips, --sides), native "
                        "(whole frames of a GOP span at the video's resolution) and crop "
                        "(full-resolution crops --crop-widths wide), e.g. native:0.5,crop:0.3,down:0.2")
    g.add_argument("--sides", type=_csv_ints, default=DEFAULT_SIDES, help="down task heights/widths")
    g.add_argument("--crop-widths", type=_csv_ints, default=DEFAULT_CROP_WIDTHS, metavar="MIN,MAX",
                   help="width range of crop tasks (multiples of the model's total stride)")
    g.add_argument("--gops", type=_csv_ints, default=DEFAULT_GOPS, metavar="N,...",
                   help="GOP lengths native/crop tasks draw their frames from (the encoder's is 120)")
    g.add_argument("--native-max-side", type=int, default=None, metavar="PX",
                   help="reduce native tasks of larger videos by an integer box filter until their "
                        "longer side fits (default: true native resolution)")
    g.add_argument("--native-cache-mb", type=float, default=2048,
                   help="full-resolution frame cache per process (native/crop tasks)")
    g.add_argument("--colour-aug", type=float, default=0.0, metavar="P",
                   help="probability that a task's RGB channels are reordered (one of the five other "
                        "orders): more varied tasks from train/'s few clips (default 0: none)")
    g.add_argument("--grid", type=_hw, default=(8, 8), help="stored grid size HxW of the init")
    g.add_argument("--cache-mb", type=float, default=1536, help="decoded-frame cache per process")
    g.add_argument("--short-side", type=int, default=320, help="cached copies' short side")
    g.add_argument("--max-frames", type=int, default=200, help="frames used per video (from the first)")
    g.add_argument("--max-tstride", type=int, default=4, help="largest temporal stride of a task")
    g.add_argument("--frame-cache", default=None, metavar="DIR",
                   help="keep decoded, downscaled videos here (.npy) so later runs skip decoding")
    g.add_argument("--warm-cache", action="store_true",
                   help="decode every video before the clock starts")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (1: on a busy machine more threads can be far slower "
                        "unless OMP_WAIT_POLICY=PASSIVE; use more processes instead)")
    g.add_argument("--ckpt", default=None, help="checkpoint file (default: OUT.ckpt)")
    g.add_argument("--ckpt-minutes", type=float, default=3.0)
    g.add_argument("--resume", action="store_true", help="continue from --ckpt")
    g.add_argument("--start-from", default=None, metavar="INIT",
                   help="warm start: begin from this init file's tensors (same model shape) "
                        "instead of a random model, e.g. to move an init to new task kinds")
    g.add_argument("--channels", type=_csv_ints, default=None, metavar="C1,C2,C3,C4",
                   help="channels of the decoder blocks (default "
                        f"{','.join(map(str, NeRVConfig().channels))}; the shipped init is 32,24,16,8); "
                        "another shape is another capacity class and needs its own init")
    g.add_argument("--tiny", action="store_true", help="a tiny model (tests and smoke runs)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def tiny_config() -> NeRVConfig:
    """A very small model for tests: same structure, a fraction of the compute."""
    return NeRVConfig(pe_freqs=4, embed_dim=8, grid_channels=4, grid_anchors=2,
                      channels=(8, 6, 4, 4), strides=(2, 2, 2, 2))


# ----------------------------------------------------------------------------- distributed

def _dist_setup() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return rank, world, device


def _all_reduce_mean(tensors: list[Tensor], world: int) -> None:
    """Average ``tensors`` in place across processes (one flat buffer, one collective)."""
    if world == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    off = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[off:off + n].view_as(t))
        off += n


def _broadcast(tensors: list[Tensor], world: int) -> None:
    if world == 1:
        return
    for t in tensors:
        dist.broadcast(t.data, src=0)


# ----------------------------------------------------------------------------- one task

def task_loss(model: NeRV, task: Task, weights: tuple[float, ...] | None, device: torch.device,
              batches: list[Tensor], loss: str = "ssim"):
    """The fitting loss of a task (``task_distortion`` of kind ``loss``) as ``fn(params, k)`` on
    frame batch ``batches[k]``.

    Also returns ``evaluate(params, idx) -> (loss, final prediction, target)``.
    """
    t_all = task.times.to(device)
    x_all = task.frames.to(device)  # uint8 for full-resolution tasks: converted per batch

    def evaluate(params: dict[str, Tensor], idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t, x = t_all[idx], x_all[idx]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
        if weights is None:
            pred = functional_call(model, params, (t,))
            return task_distortion(pred, x, loss), pred, x
        preds = functional_call(model, params, (t,), {"all_scales": True})
        return multiscale_loss(preds, x, weights, kind=loss), preds[-1], x

    def fn(params: dict[str, Tensor], k: int) -> Tensor:
        return evaluate(params, batches[k])[0]

    return fn, evaluate


def draw_batches(n_frames: int, batch: int, count: int, rng: np.random.Generator) -> list[Tensor]:
    """``count`` random frame batches (all frames when the task is no larger than a batch)."""
    if n_frames <= batch:
        return [torch.arange(n_frames)] * count
    return [torch.from_numpy(np.sort(rng.choice(n_frames, batch, replace=False))) for _ in range(count)]


def task_view(base: dict[str, Tensor], grid_hw: tuple[int, int]) -> dict[str, Tensor]:
    """The init as a model for one task: the grid resampled (differentiably) to the task's size."""
    view = dict(base)
    view["grid"] = resize_grid(base["grid"], grid_hw)
    return view


def meta_task_grad(model: NeRV, base: dict[str, Tensor], log_lrs: dict[str, Tensor] | None,
                   task: Task, opts: argparse.Namespace, weights: tuple[float, ...] | None,
                   device: torch.device, rng: np.random.Generator, scale: float = 1.0,
                   inner_scales: dict[str, float] | None = None) -> float:
    """Accumulate ``scale`` x this task's meta-gradient into ``.grad``; returns the query PSNR.

    The inner steps each see a random batch of the task's frames (as the encoder's fine-tuning
    does); MAML's query loss is taken on a further random batch, so the init is rewarded for
    adapting to the whole clip, not only to the frames it stepped on. With ``opts.inner_rate``
    the inner loop is the encoder's coded fit (:func:`coded_task_grad`).
    """
    s = model.config.total_stride
    grid_hw = (task.hw[0] // s, task.hw[1] // s)
    batches = draw_batches(task.frames.shape[0], opts.batch, opts.inner_steps + 1, rng)
    fn, evaluate = task_loss(model, task, weights, device, batches, getattr(opts, "loss", "ssim"))
    inner_opt = opts.inner_opt or ("adam" if opts.algo == "reptile" else "sgd")
    query = batches[-1]
    if getattr(opts, "inner_rate", None):
        return coded_task_grad(model, base, task, opts, fn, evaluate, grid_hw, query, rng, scale, inner_scales)
    if opts.algo == "reptile":
        with torch.no_grad():
            start = task_view(base, grid_hw)
        adapted = maml.reptile_adapt(fn, start, opts.inner_steps, opts.inner_lr)
        (scale * maml.reptile_grad(task_view(base, grid_hw), adapted)).backward()
        with torch.no_grad():
            _, pred, x = evaluate(adapted, query)
            return float(psnr(pred, x))
    lrs = log_lrs if log_lrs is not None else opts.inner_lr
    adapted = maml.adapt(fn, task_view(base, grid_hw), opts.inner_steps, lrs,
                         first_order=opts.algo == "fomaml", opt=inner_opt,
                         learn_lrs=log_lrs is not None)
    loss, pred, x = evaluate(adapted, query)
    (scale * loss).backward()
    return float(psnr(pred.detach(), x))


def coded_task_grad(model: NeRV, base: dict[str, Tensor], task: Task, opts: argparse.Namespace,
                    fn, evaluate, grid_hw: tuple[int, int], query: Tensor, rng: np.random.Generator,
                    scale: float, inner_scales: dict[str, float] | None) -> float:
    """One task through the encoder's coded fit (``maml.coded_adapt``) at a random rate weight.

    Reptile moves the init toward ``init + Q(r)``, the weights the file would decode; first-order
    MAML takes the query batch's gradient at those weights, which for the many residuals the rate
    keeps at level 0 is the gradient of the picture with respect to the init's own values.
    """
    lo, hi = opts.inner_rate
    lam = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    h, w = task.hw
    pixels = max(opts.rate_frames, task.frames.shape[0]) * h * w
    with torch.no_grad():
        start = task_view(base, grid_hw)
    moves = maml.coded_adapt(fn, start, decode_param_names(model), opts.inner_steps, opts.inner_lr, lam,
                             pixels, lr_scales=inner_scales, seed=int(rng.integers(2 ** 31)))
    view = task_view(base, grid_hw)
    if opts.algo == "reptile":
        adapted = {k: start[k] + moves[k] if k in moves else start[k] for k in start}
        (scale * maml.reptile_grad(view, adapted)).backward()
        with torch.no_grad():
            _, pred, x = evaluate(adapted, query)
            return float(psnr(pred, x))
    adapted = {k: view[k] + moves[k] if k in moves else view[k] for k in view}
    loss, pred, x = evaluate(adapted, query)
    (scale * loss).backward()
    return float(psnr(pred.detach(), x))


# ----------------------------------------------------------------------------- main loop

def _machine(world: int, threads: int, device: torch.device) -> str:
    if device.type == "cuda":
        hw = torch.cuda.get_device_name(device)
    else:
        hw = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    return (f"{platform.node()} ({hw}); {world} process(es) x {threads} thread(s); "
            f"torch {torch.__version__}; Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nervc meta-train``; ``argv`` excludes the sub-command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = build_parser().parse_args(argv)
    try:
        run(opts, argv)
        return 0
    except NervcError as e:
        print(f"nervc meta-train: error: {e}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def model_config(opts: argparse.Namespace) -> NeRVConfig:
    """The model shape ``--tiny`` / ``--channels`` ask for (NeRVConfig's defaults otherwise)."""
    if opts.channels is None:
        return tiny_config() if opts.tiny else NeRVConfig()
    default = NeRVConfig()
    if opts.tiny:
        raise NervcError("--channels and --tiny both fix the model shape: give one")
    if len(opts.channels) != len(default.strides) or not all(0 < c <= 256 for c in opts.channels):
        raise NervcError(f"--channels wants {len(default.strides)} widths in 1..256, "
                         f"got {','.join(map(str, opts.channels))}")
    return NeRVConfig(channels=tuple(opts.channels))


def _check(opts: argparse.Namespace, config: NeRVConfig) -> None:
    if opts.steps is None and opts.minutes is None:
        raise NervcError("give a budget: --steps N and/or --minutes M")
    if opts.inner_steps < 1 or opts.tasks_per_step < 1 or opts.batch < 1:
        raise NervcError("--inner-steps, --tasks-per-step and --batch must be at least 1")
    if opts.algo == "metasgd":
        opts.learn_lr = True
    if opts.learn_lr and opts.algo == "reptile":
        raise NervcError("--learn-lr needs --algo maml, fomaml or metasgd (Reptile has no differentiable inner loop)")
    if opts.inner_rate is not None:
        if opts.algo not in ("reptile", "fomaml") or opts.learn_lr:
            raise NervcError("--inner-rate needs --algo reptile or fomaml (the coded fit is not differentiated)")
        if len(opts.inner_rate) != 2 or not 0 < opts.inner_rate[0] <= opts.inner_rate[1]:
            raise NervcError("--inner-rate wants LO,HI with 0 < LO <= HI")
        if opts.rate_frames < 1:
            raise NervcError("--rate-frames must be at least 1")
    s = config.total_stride
    if "crop" in opts.task_mix:
        if len(opts.crop_widths) != 2 or not 0 < opts.crop_widths[0] <= opts.crop_widths[1]:
            raise NervcError("--crop-widths wants MIN,MAX with 0 < MIN <= MAX")
        if opts.crop_widths[1] < s or -(-opts.crop_widths[0] // s) * s > opts.crop_widths[1]:
            raise NervcError(f"--crop-widths {opts.crop_widths[0]},{opts.crop_widths[1]} holds no "
                             f"multiple of the model's total stride {s}")
    if not 0.0 <= opts.colour_aug <= 1.0:
        raise NervcError("--colour-aug is a probability in 0..1")
    if not opts.gops or min(opts.gops) < 1:
        raise NervcError("--gops must be positive frame counts")
    if opts.native_max_side is not None and opts.native_max_side < s:
        raise NervcError(f"--native-max-side must be at least the model's total stride {s}")
    if len(opts.scale_weights) != len(config.channels):  # checked with or without --spatial
        raise NervcError(f"--scale-weights needs {len(config.channels)} values (one per block)")
    if any(s % config.total_stride for s in opts.sides):
        raise NervcError(f"--sides must be multiples of the model's total stride {config.total_stride}")
    if Path(opts.out).suffix != ".safetensors":
        raise NervcError("--out must end in .safetensors")


def _start_init(path: str, config: NeRVConfig) -> InitFile:
    """The init ``--start-from`` names; it must be made for this model shape."""
    init = load_init(path)
    if init.config != config:
        raise NervcError(f"--start-from {path}: made for another model shape ({init.config})")
    return init


def run(opts: argparse.Namespace, argv: list[str]) -> dict[str, Tensor]:
    """Meta-train as ``opts`` say; every process returns its final meta-parameters (CPU)."""
    rank, world, device = _dist_setup()
    threads = max(1, opts.threads)
    torch.set_num_threads(threads)
    config = model_config(opts)
    _check(opts, config)
    weights = tuple(opts.scale_weights) if opts.spatial else None
    schedule = FrameSchedule(start=min(opts.frames_start, opts.frames), end=opts.frames,
                             ramp=opts.ramp, enabled=not opts.no_temporal)
    ckpt_path = Path(opts.ckpt or (opts.out + ".ckpt"))
    out_path = Path(opts.out)
    if rank == 0 and not out_path.parent.is_dir():
        raise NervcError(f"{out_path.parent}: no such directory")

    sampler = TaskSampler(opts.data, sides=opts.sides, stride=config.total_stride,
                          cache_mb=opts.cache_mb, short_side=opts.short_side,
                          max_frames=opts.max_frames, max_temporal_stride=opts.max_tstride,
                          disk_cache=opts.frame_cache, mix=opts.task_mix,
                          crop_widths=tuple(opts.crop_widths), gops=tuple(opts.gops),
                          native_cache_mb=opts.native_cache_mb, native_max_side=opts.native_max_side,
                          colour=opts.colour_aug)
    if opts.split != "all" or opts.clips is not None:
        # before any video is opened: a held-back clip is never decoded by a --split meta run
        sampler.videos = splits.select(sampler.videos, opts.split, opts.clips, opts.clip_seed)
    split_key = {"name": opts.split, "clips": [p.name for p in sampler.videos]}
    if opts.warm_cache:
        # the disk cache lets ranks share the down copies; frame counts are per process
        full_res = "native" in sampler.mix or "crop" in sampler.mix
        for i, path in enumerate(sampler.videos):
            if i % world == rank or opts.frame_cache is None or full_res:
                try:
                    sampler.warm(path)
                except NervcError:
                    pass
        if world > 1:
            dist.barrier()
    start = _start_init(opts.start_from, config) if opts.start_from and not opts.resume else None
    # A continuation that does not learn step sizes keeps the ones it started from (they are per
    # tensor name, so they carry over to the same shape); the coded inner loop uses them.
    carried, inner_scales = None, None
    if opts.start_from and not opts.learn_lr:
        source = start or _start_init(opts.start_from, config)
        if source.metasgd:
            carried = dict(source.metasgd)
            carried["source"] = f"{opts.start_from} (id {source.short_id}), carried over unchanged"
            if opts.inner_rate:
                inner_scales = lr_scales(source, clamp=FIT_LR_CLAMP)
    model = build_model(config, opts.grid, start.state if start else None, seed=opts.seed).to(device)
    start_from = {"path": str(opts.start_from), "id": start.digest.hex()[:16]} if start else None
    base = dict(model.named_parameters())
    log_lrs = (maml.init_log_lrs(base, opts.inner_lr, device=device) if opts.learn_lr else None)
    groups = [{"params": list(base.values()), "lr": opts.outer_lr}]
    if log_lrs is not None:
        groups.append({"params": list(log_lrs.values()), "lr": opts.lr_lr})
    optimizer = torch.optim.Adam(groups)
    base_lrs = [g["lr"] for g in groups]
    meta_tensors = list(base.values()) + (list(log_lrs.values()) if log_lrs else [])

    step, elapsed0, tasks_done = 0, 0.0, 0
    first_started = None
    session_end = math.inf
    if opts.resume:
        tensors, state = load_checkpoint(ckpt_path)
        if state.get("config") != config.to_dict() or state.get("algo") != opts.algo:
            raise NervcError(f"checkpoint {ckpt_path}: made with another model or algorithm")
        if bool(state.get("learn_lr")) != bool(opts.learn_lr):
            raise NervcError(f"checkpoint {ckpt_path}: --learn-lr differs from the checkpoint's")
        made = state.get("inner_rate")
        if made != (list(opts.inner_rate) if opts.inner_rate else None):
            raise NervcError(f"checkpoint {ckpt_path}: made with --inner-rate "
                             f"{','.join(map(str, made)) if made else '(none)'}, not as given now")
        if state.get("split", split_key) != split_key:
            raise NervcError(f"checkpoint {ckpt_path}: made on another split or clip subset "
                             f"({state.get('split')}), not {split_key}")
        if state.get("loss", "ssim") != opts.loss:
            raise NervcError(f"checkpoint {ckpt_path}: made with --loss {state.get('loss', 'ssim')}, "
                             f"not {opts.loss}")
        with torch.no_grad():
            for n, p in base.items():
                if tensors[f"param.{n}"].shape != p.shape:
                    raise NervcError(f"checkpoint {ckpt_path}: {n} has another shape (--grid?)")
                p.copy_(tensors[f"param.{n}"])
            for n, p in (log_lrs or {}).items():
                p.copy_(tensors[f"loglr.{n}"])
        optimizer_from_flat(optimizer, tensors, state["optimizer"])
        step, elapsed0, tasks_done = int(state["step"]), float(state["elapsed"]), int(state["tasks"])
        start_from, first_started = state.get("start_from"), state.get("started")  # the first session's
    if opts.stop_after is not None:
        session_end = step + opts.stop_after
    _broadcast(meta_tensors, world)

    budget_s = opts.minutes * 60.0 if opts.minutes is not None else math.inf
    command = "nervc meta-train " + " ".join(shlex.quote(a) for a in argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if opts.resume and first_started:
        started = first_started
    t_start = time.monotonic()
    last_ckpt = t_start
    last_log = t_start

    def progress(elapsed: float) -> float:
        p = 0.0
        if opts.steps:
            p = max(p, step / opts.steps)
        if math.isfinite(budget_s) and budget_s > 0:
            p = max(p, elapsed / budget_s)
        return min(p, 1.0)

    def write_checkpoint(elapsed: float) -> None:
        tensors = {f"param.{n}": p for n, p in base.items()}
        tensors.update({f"loglr.{n}": p for n, p in (log_lrs or {}).items()})
        opt_tensors, opt_meta = optimizer_to_flat(optimizer)
        tensors.update(opt_tensors)
        save_checkpoint(ckpt_path, tensors, {
            "step": step, "elapsed": elapsed, "tasks": tasks_done, "algo": opts.algo, "loss": opts.loss,
            "inner_rate": list(opts.inner_rate) if opts.inner_rate else None,
            "learn_lr": bool(opts.learn_lr), "config": config.to_dict(), "world_size": world,
            "split": split_key,
            "optimizer": opt_meta, "command": command, "started": started, "start_from": start_from,
            "rng": {"seed": opts.seed, "scheme": "numpy default_rng([seed, rank, step, task])"}})

    bar = tqdm(total=opts.steps, initial=step, disable=opts.quiet or rank != 0, unit="step",
               mininterval=2.0, dynamic_ncols=True, desc="meta-train")
    ema_psnr = None
    rate_t0, rate_tasks = time.monotonic(), 0
    try:
        while True:
            elapsed = elapsed0 + time.monotonic() - t_start
            flags = torch.tensor([float((opts.steps is not None and step >= opts.steps)
                                        or elapsed >= budget_s or step >= session_end),
                                  progress(elapsed)])
            if world > 1:
                dist.broadcast(flags, src=0)
            if flags[0] > 0:
                break
            n_frames = schedule.frames_at(float(flags[1]))
            decay = opts.outer_decay + (1 - opts.outer_decay) * 0.5 * (1 + math.cos(math.pi * float(flags[1])))
            for group, base_lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base_lr * decay
            optimizer.zero_grad(set_to_none=False)
            for p in meta_tensors:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            psnrs = []
            for k in range(opts.tasks_per_step):
                rng = np.random.default_rng([opts.seed, rank, step, k])
                task = sampler.sample(rng, n_frames)
                psnrs.append(meta_task_grad(model, base, log_lrs, task, opts, weights, device, rng,
                                            scale=1.0 / opts.tasks_per_step, inner_scales=inner_scales))
            grads = [p.grad for p in meta_tensors]
            stat = torch.tensor([float(np.mean(psnrs))], device=device)
            _all_reduce_mean(grads + [stat], world)
            gnorm = maml.clip_grad_norm_(meta_tensors, opts.clip)
            if math.isfinite(gnorm):
                optimizer.step()
            step += 1
            tasks_done += opts.tasks_per_step * world
            rate_tasks += opts.tasks_per_step * world
            q = float(stat[0])
            ema_psnr = q if ema_psnr is None else 0.95 * ema_psnr + 0.05 * q
            if rank == 0:
                now = time.monotonic()
                tps = rate_tasks / max(now - rate_t0, 1e-9)
                bar.update(1)
                bar.set_postfix(psnr=f"{ema_psnr:.2f}", tasks_s=f"{tps:.2f}", frames=n_frames,
                                refresh=False)
                if now - last_log >= 60.0:
                    lr_note = ""
                    if log_lrs:
                        lrs = torch.stack([v.detach().exp() for v in log_lrs.values()])
                        lr_note = f" inner_lr[min/med/max]={lrs.min():.2e}/{lrs.median():.2e}/{lrs.max():.2e}"
                    bar.write(f"step {step} elapsed {elapsed:.0f}s query_psnr(ema) {ema_psnr:.2f} "
                              f"frames {n_frames} tasks/s {tps:.2f} |g| {gnorm:.3g}{lr_note}")
                    last_log, rate_t0, rate_tasks = now, now, 0
                if now - last_ckpt >= opts.ckpt_minutes * 60.0:
                    write_checkpoint(elapsed0 + now - t_start)
                    last_ckpt = now
    finally:
        bar.close()
    elapsed = elapsed0 + time.monotonic() - t_start
    if rank == 0:
        write_checkpoint(elapsed)
        info = {
            "command": command, "launcher": (f"torchrun x {world}" if world > 1 else "single process"),
            "started": started, "seconds": round(elapsed, 1), "machine": _machine(world, threads, device),
            "data": str(Path(opts.data).resolve()), "algorithm": opts.algo,
            "steps": step, "tasks": tasks_done, "loss": opts.loss,
            "inner": {"steps": opts.inner_steps, "lr": opts.inner_lr,
                      "opt": opts.inner_opt or ("adam" if opts.algo == "reptile" else "sgd"),
                      "learned_lr": bool(opts.learn_lr)},
            "outer": {"opt": "adam", "lr": opts.outer_lr, "clip": opts.clip, "decay_to": opts.outer_decay,
                      "tasks_per_step": opts.tasks_per_step * world},
            "spatial_guidance": list(weights) if weights else None,
            "temporal_guidance": schedule.to_dict() if schedule.enabled else None,
            "task_sides": list(opts.sides), "batch": opts.batch, "max_tstride": opts.max_tstride,
            "task_mix": sampler.mix, "max_frames": opts.max_frames, "colour_aug": opts.colour_aug,
            "split": {"name": opts.split, "clips": [p.name for p in sampler.videos],
                      **({"nested_n": opts.clips, "clip_seed": opts.clip_seed} if opts.clips else {})},
            "seed": opts.seed,
            "start_from": start_from,
            "final_query_psnr": None if ema_psnr is None else round(ema_psnr, 3),
        }
        if "native" in sampler.mix or "crop" in sampler.mix:
            info["full_res_tasks"] = {"gops": list(opts.gops), "crop_widths": list(opts.crop_widths),
                                      "native_max_side": opts.native_max_side}
        if opts.inner_rate:
            info["inner_rate"] = {"lam": list(opts.inner_rate), "per": "coded pixel",
                                  "rate_frames": opts.rate_frames, "step_sizes": bool(inner_scales)}
        if log_lrs:
            info["inner_lrs"] = {n: float(v.detach().exp()) for n, v in log_lrs.items()}
        state = {n: p.detach().cpu() for n, p in base.items()}
        learned = carried
        if log_lrs:
            learned = {"log_lrs": {n: v.detach().cpu() for n, v in log_lrs.items()},
                       "inner_opt": info["inner"]["opt"], "inner_steps": opts.inner_steps}
        digest = save_init(out_path, config, state, info, metasgd=learned)
        print(f"wrote {out_path} ({out_path.stat().st_size} bytes, id {digest.hex()[:16]}) after "
              f"{step} steps / {tasks_done} tasks in {elapsed:.0f}s", file=sys.stderr)
    return {n: p.detach().cpu().clone() for n, p in base.items()}


if __name__ == "__main__":
    sys.exit(main())
