"""Adaptation benchmark: how fast does each init fit clips it has never seen?

Native mode (the default, protocol ``adapt-native-v1``): the first 16 frames of every clip of
the benchmark folder (never used for meta-training) at the resolution the RD benchmark codes it
(``benchmarks/protocol.py``: native, coffee_720p reduced to 320x180 by a 4x4 box filter), are
fitted from each init exactly as ``nervc encode --steps N`` fits a GOP -- the encoder's own
loop (``encoder_fit`` calls ``codec.finetune.fit_gop``, bitstream v2's rate-distortion fit at
the default rung's lam): Adam on the residuals and the learned steps, a warmup-stable-decay
learning rate peaking at 2e-2 *over the N steps of that run*, random batches of 8 frames, loss
the encoder's distortion (``--tune``; 0.7 L1 + 0.3 (1 - SSIM) before 2026-11-28's "balanced")
+ lam * bits/pixel on the replicate-padded frames; PSNR is measured
on the quantized weights the decoder would rebuild. Each N in 0, 10, 25, 50, 100, 250, 500 is its own run (the schedule depends on N), and
the 8-bit RGB PSNR of all frames (mean of per-frame MSE, as the encoder reports) is stored as
one JSON record per (clip, init, N) under ``--results``; a finished record whose settings match
is reused, so an interrupted run resumes. ``--scale K`` box-reduces every clip by K more and
``--clips`` picks clips, for quick runs. Writes ``--out-json`` (every curve, the summary) and
``--out-png`` (PSNR vs steps per init; gain over random per clip).

Downscaled mode (``--downscaled``, the original harness): clips downscaled to a 128-pixel
longer side, one run per init at a constant learning rate with PSNR read off at each N; writes
``benchmarks/adaptation.json`` and ``benchmarks/adaptation.png``.

    python -m benchmarks.adaptation [--clips a,b] [--steps 0,10] [--scale K] [--init NAME=PATH ...]
    python -m benchmarks.adaptation --downscaled [--out-json F] [--out-png F] [--init NAME=PATH ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from benchmarks.protocol import Clip, v1_clips
from nervcore.atomic import write_bytes_atomic
from nervcore.video_io import read_video
from metanerv.init_file import DEFAULT_INIT, FIT_LR_CLAMP, load_init, lr_scales
from metanerv.losses import psnr, reconstruction_loss
from metanerv.model import (init_state_for, NeRV, NeRVConfig, build_model, frame_times,
                            grid_size_for, pad_to_stride)
from metanerv.tasks import list_videos

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BENCH_DIR = DATA / "bench"
INIT_DIR = Path(__file__).resolve().parent / "inits"
DEFAULT_INITS = (f"shipped={DEFAULT_INIT}", "random=random",
                 f"full-short={INIT_DIR / 'full_short.safetensors'}",
                 f"no-spatial={INIT_DIR / 'no_spatial.safetensors'}",
                 f"no-temporal={INIT_DIR / 'no_temporal.safetensors'}")
NATIVE_DEFAULT_INITS = DEFAULT_INITS[:2]  # shipped and random
DEFAULT_STEPS = (0, 10, 25, 50, 100, 250, 500)
NATIVE_PROTOCOL = "adapt-native-v1"
NATIVE_RESULTS = Path(__file__).resolve().parent / "work" / "adaptation-native"
NATIVE_JSON = Path(__file__).resolve().parent / "adaptation_native.json"
NATIVE_PNG = Path(__file__).resolve().parent / "adaptation_native.png"
L1_WEIGHT = 0.7  # codec FitSettings.l1_weight


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.adaptation",
                                description="PSNR after N fine-tuning steps from each init.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--native", dest="native", action="store_true", default=True,
                      help="clips at the RD protocol's resolution, the encoder's fitting (default)")
    mode.add_argument("--downscaled", dest="native", action="store_false",
                      help="the original harness: clips downscaled to --max-side, constant lr")
    p.add_argument("--data", default=str(BENCH_DIR), help="folder of clips")
    p.add_argument("--init", action="append", default=None, metavar="NAME=PATH",
                   help="an init to compare ('random' as PATH: random weights); repeatable "
                        "(default: shipped and random; --downscaled adds the three ablation inits)")
    p.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)),
                   help="comma-separated step counts to report")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (from the first)")
    p.add_argument("--max-side", type=int, default=128,
                   help="--downscaled: downscale clips to this longer side")
    p.add_argument("--scale", type=int, default=1,
                   help="native: reduce every clip by this integer box factor more (quick runs)")
    p.add_argument("--batch", type=int, default=8, help="frames per fine-tuning step")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam step size (native: the schedule's peak, default 2e-2 as the encoder; "
                        "downscaled: constant, default 5e-3)")
    p.add_argument("--lam", type=float, default=None,
                   help="native: rate weight of the fit (default: the default rung's; 0 = pure "
                        "distortion, which compares inits without delta coding's pull to the init)")
    p.add_argument("--meta-lr", action="store_true",
                   help="native: fit with the init's Meta-SGD step sizes, as the encoder does "
                        "(inits without them: plain Adam)")
    from codec.finetune import DEFAULT_TUNE, DISTORTIONS
    p.add_argument("--tune", default=DEFAULT_TUNE, choices=DISTORTIONS,
                   help=f"native: the fit's distortion, as nervc encode --tune (default {DEFAULT_TUNE}; "
                        "records made before it existed are ssim's)")
    p.add_argument("--results", default=str(NATIVE_RESULTS),
                   help="native: folder of per-(clip, init, steps) records (resume from it)")
    p.add_argument("--force", action="store_true", help="native: recompute records that exist")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (more only with OMP_WAIT_POLICY=PASSIVE on a busy machine)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    p.add_argument("--clips", default=None, help="comma-separated clip names to keep")
    p.add_argument("--out-json", default=None,
                   help=f"default {NATIVE_JSON.name} (native), adaptation.json (downscaled)")
    p.add_argument("--out-png", default=None,
                   help=f"default {NATIVE_PNG.name} (native), adaptation.png (downscaled)")
    p.add_argument("--quiet", action="store_true")
    return p


def load_clip(path: Path, frames: int, max_side: int) -> Tensor:
    """The first ``frames`` frames as float ``[n, 3, h, w]``, downscaled to ``max_side``."""
    video = read_video(path, frames=slice(0, frames))
    x = torch.from_numpy(np.ascontiguousarray(video.frames)).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    s = max_side / max(h, w)
    if s < 1.0:
        size = (max(1, round(h * s)), max(1, round(w * s)))
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0)


def finetune_curve(frames: Tensor, config: NeRVConfig, init_state: dict[str, Tensor] | None,
                   report: list[int], lr: float, batch: int, seed: int) -> dict[int, float]:
    """Fine-tune from ``init_state`` (None: random) and return PSNR at each step in ``report``."""
    n, _, h, w = frames.shape
    target = pad_to_stride(frames, config.total_stride)
    model = build_model(config, grid_size_for(h, w, config), init_state, seed=seed)
    params = [p for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    t_all = frame_times(list(range(n)), n)
    out: dict[int, float] = {}
    want = sorted(set(report))

    def measure() -> float:
        with torch.no_grad():
            pred = torch.cat([model(t_all[i:i + batch]) for i in range(0, n, batch)])
            return float(psnr(pred[..., :h, :w], frames))

    step = 0
    for stop in want:
        while step < stop:
            idx = torch.randperm(n, generator=gen)[:batch] if n > batch else torch.arange(n)
            loss = reconstruction_loss(model(t_all[idx]), target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        out[stop] = measure()
    return out


# ----------------------------------------------------------------------------- native mode

def encoder_fit(model: NeRV, target: Tensor, steps: int, lr: float = 2e-2, batch: int = 8,
                seed: int = 0, base: dict[str, Tensor] | None = None,
                lam: float | None = None, lr_scales: dict[str, float] | None = None,
                tune: str | None = None) -> dict[str, Tensor]:
    """Fit ``model`` to padded frames ``target`` ``[n, 3, Hp, Wp]`` exactly as ``nervc encode
    --steps`` does, by calling the encoder's own fit (``codec.finetune.fit_gop``: rate-distortion
    optimised, learned steps, the default rung's ``lam``), and return the weights the decoder
    would rebuild (``base`` + quantized residuals; ``base`` = the init's tensors, None for a
    random start). ``model`` itself is left unchanged."""
    from codec.finetune import FitSettings, fit_gop
    from codec.ladder import DEFAULT_QUALITY, LADDER
    s = FitSettings(steps=steps, lr=lr, batch=batch, seed=seed,
                    lam=LADDER[DEFAULT_QUALITY].lam if lam is None else lam, lr_scales=lr_scales,
                    **({"distortion": tune} if tune else {}))
    pixels = target.shape[0] * target.shape[2] * target.shape[3]
    coded = fit_gop(model, target, base, s, pixels, progress=False)
    return coded.weights(base)


def psnr8(model: NeRV, weights: dict[str, Tensor], frames: np.ndarray, batch: int = 8) -> float:
    """8-bit RGB PSNR of the decoded ``uint8 [n, h, w, 3]`` frames: the mean over frames of the
    per-frame MSE, then dB (``codec.encoder.rgb_psnr`` on what ``codec.decoder`` would output)."""
    n, h, w, _ = frames.shape
    t_all = frame_times(list(range(n)), n)
    mses = []
    with torch.no_grad():
        for i in range(0, n, batch):
            y = functional_call(model, weights, (t_all[i:i + batch],))[..., :h, :w]
            y = y.mul(255.0).round_().clamp_(0, 255).permute(0, 2, 3, 1).double()
            ref = torch.from_numpy(frames[i:i + batch]).double()
            mses.extend(((y - ref) ** 2).mean(dim=(1, 2, 3)).tolist())
    mse = float(np.mean(mses))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def adapt_psnr(frames: np.ndarray, config: NeRVConfig, state: dict[str, Tensor] | None, steps: int,
               lr: float = 2e-2, batch: int = 8, seed: int = 0, lam: float | None = None,
               lr_scales: dict[str, float] | None = None, tune: str | None = None) -> float:
    """8-bit PSNR after fitting ``uint8 [n, h, w, 3]`` frames for ``steps`` steps from ``state``
    (an init's tensors, grid at any size -- resampled bilinearly -- or None: random weights)."""
    n, h, w, _ = frames.shape
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    target = pad_to_stride(x, config.total_stride)
    ghw = grid_size_for(h, w, config)
    model = build_model(config, ghw, state, seed=seed)
    base = init_state_for(state, ghw) if state is not None else None
    weights = encoder_fit(model, target, steps, lr, batch, seed, base, lam=lam, lr_scales=lr_scales, tune=tune)
    return psnr8(model, weights, frames, batch)


def native_clips(data: Path, frames: int, scale: int) -> list[Clip]:
    """The clips of ``data`` as the RD protocol codes them, first ``frames`` frames, reduced
    ``scale`` times more: for the benchmark folder exactly ``protocol.v1_clips`` (coffee_720p at
    320x180), for any other folder every video at native resolution."""
    data = Path(data).resolve()
    if data == BENCH_DIR.resolve():
        clips = v1_clips(data.parent)
    else:
        clips = [Clip(p.name.split(".")[0], p) for p in list_videos(data)]
    return [dataclasses.replace(c, frames=frames, downscale=c.downscale * scale) for c in clips]


def _native_record_path(results: Path, clip: str, init: str, steps: int) -> Path:
    return results / clip / init / f"s{steps}.json"


def _config_and_state(init_path: str, random_config: dict, meta_lr: bool = False
                      ) -> tuple[NeRVConfig, dict[str, Tensor] | None, dict[str, float] | None]:
    """The model configuration, start tensors and (with ``meta_lr``, as the encoder clamps
    them) Meta-SGD step-size multipliers of an init file, or of "random" (no tensors)."""
    if init_path == "random":
        return NeRVConfig.from_dict(random_config), None, None
    init = load_init(init_path)
    if not meta_lr:
        return init.config, init.state, None
    return init.config, init.state, lr_scales(init, clamp=FIT_LR_CLAMP)


def _native_job(a: tuple) -> dict:
    """One (clip, init, steps) fit; a top-level function so worker processes can run it."""
    clip, init_path, init_key, steps, settings, threads, random_config = a
    torch.set_num_threads(threads)
    frames = clip.load().frames
    config, state, scales = _config_and_state(init_path, random_config, bool(settings.get("meta_lr")))
    c0 = time.monotonic()
    value = adapt_psnr(frames, config, state, steps, settings["lr"], settings["batch"], settings["seed"],
                       settings.get("lam"), scales, settings.get("tune", "ssim"))
    return {**init_key, "steps": steps, "psnr": value, "frames": int(frames.shape[0]),
            "height": int(frames.shape[1]), "width": int(frames.shape[2]),
            "seconds": round(time.monotonic() - c0, 2),
            "machine": f"{platform.node()} {platform.machine()}, torch {torch.__version__}, "
                       f"{threads} thread(s)"}


def native_main(opts: argparse.Namespace, steps: list[int], inits: list[tuple[str, str]]) -> int:
    out_json = Path(opts.out_json or NATIVE_JSON)
    out_png = Path(opts.out_png or NATIVE_PNG)
    results = Path(opts.results)
    loaded, default_config = _load_inits(inits)
    clips = native_clips(Path(opts.data), opts.frames, opts.scale)
    if opts.clips:
        keep = {c.strip() for c in opts.clips.split(",") if c.strip()}
        clips = [c for c in clips if c.name in keep or c.path.name in keep]
        if not clips:
            raise SystemExit(f"--clips {opts.clips}: no such clip in {opts.data}")
    settings = {"lr": opts.lr, "batch": opts.batch, "seed": opts.seed, "l1_weight": L1_WEIGHT,
                "optimizer": "codec.finetune.fit_gop (v2, rate-aware, default rung)",
                "schedule": "warmup-stable-decay over N steps",
                "frames": opts.frames, "scale": opts.scale}
    if opts.lam is not None:  # absent by default: records of the default rung stay valid
        settings["lam"] = opts.lam
    if opts.meta_lr:
        settings["meta_lr"] = True
    if opts.tune != "ssim":  # absent for ssim: the records made before --tune existed stay valid
        settings["tune"] = opts.tune
    t0 = time.monotonic()
    todo, records = [], {}
    for clip in clips:
        for name, path in inits:
            for n in steps:
                key = {"protocol": NATIVE_PROTOCOL, "clip": clip.name, "clip_spec": clip.describe(),
                       "init": name, "init_id": loaded[name][2], "settings": settings}
                rec_path = _native_record_path(results, clip.name, name, n)
                if not opts.force:
                    try:
                        rec = json.loads(rec_path.read_text())
                    except (OSError, ValueError):
                        rec = None
                    if isinstance(rec, dict) and all(rec.get(k) == v for k, v in key.items()) \
                            and rec.get("steps") == n and isinstance(rec.get("psnr"), (int, float)):
                        records[(clip.name, name, n)] = rec
                        continue
                todo.append((clip, name, path, n, key, rec_path))
    if not opts.quiet:
        print(f"{len(records)} records reused, {len(todo)} to run", file=sys.stderr, flush=True)
    args = [(clip, path, key, n, settings, opts.threads, default_config.to_dict())
            for clip, name, path, n, key, _ in todo]
    # the longest fits first, so parallel workers finish together
    order = sorted(range(len(todo)), key=lambda i: -todo[i][3])

    def store(i: int, rec: dict) -> None:
        clip, name, _, n, _, rec_path = todo[i]
        rec_path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(rec_path, (json.dumps(rec, indent=1) + "\n").encode(), fsync=False)
        records[(clip.name, name, n)] = rec
        if not opts.quiet:
            print(f"{clip.name:28s} {name:12s} {n:4d} steps  {rec['psnr']:6.2f} dB  "
                  f"({rec['seconds']:.0f}s)", file=sys.stderr, flush=True)

    if opts.jobs > 1 and len(order) > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=opts.jobs, mp_context=ctx) as pool:
            for i, rec in zip(order, pool.map(_native_job, [args[i] for i in order])):
                store(i, rec)
    else:
        for i in order:
            store(i, _native_job(args[i]))

    result: dict = {
        "protocol": NATIVE_PROTOCOL,
        "settings": {**settings, "data": str(Path(opts.data).resolve()), "threads": opts.threads,
                     "jobs": opts.jobs, "metric": "8-bit RGB PSNR, mean of per-frame MSE",
                     "inits": {n: {"path": p, "id": loaded[n][2]} for n, p in inits}},
        "inits": [n for n, _ in inits], "steps": steps, "clips": {},
    }
    for clip in clips:
        for name, _ in inits:
            for n in steps:
                rec = records[(clip.name, name, n)]
                entry = result["clips"].setdefault(clip.name, {
                    "frames": rec["frames"], "height": rec["height"], "width": rec["width"],
                    "psnr": {}, "seconds": {}})
                entry["psnr"].setdefault(name, {})[str(n)] = rec["psnr"]
                entry["seconds"].setdefault(name, {})[str(n)] = rec["seconds"]
    result["seconds_this_run"] = round(time.monotonic() - t0, 1)
    result["fit_seconds_total"] = round(sum(r["seconds"] for r in records.values()), 1)
    result["summary"] = summarize(result)
    write_bytes_atomic(out_json, json.dumps(result, indent=2).encode(), fsync=False)
    plot(result, str(out_png), title=f"native adaptation ({NATIVE_PROTOCOL})")
    if not opts.quiet:
        _print_summary(result["summary"])
    return 0


# ----------------------------------------------------------------------------- downscaled mode

def _job(a: tuple) -> tuple[list[int], dict[int, float], float]:
    """One (clip, init) curve; a top-level function so worker processes can run it."""
    clip, name, path, frames, max_side, steps, lr, batch, seed, threads, random_config = a
    torch.set_num_threads(threads)
    x = load_clip(Path(clip), frames, max_side)
    config, state, _ = _config_and_state(path, random_config)
    c0 = time.monotonic()
    curve = finetune_curve(x, config, state, steps, lr, batch, seed)
    return list(x.shape), curve, round(time.monotonic() - c0, 1)


def _parse_inits(specs: list[str]) -> list[tuple[str, str]]:
    out = []
    for s in specs:
        name, sep, path = s.partition("=")
        if not sep or not name:
            raise SystemExit(f"--init wants NAME=PATH, got {s!r}")
        out.append((name, path))
    return out


def summarize(result: dict) -> dict:
    """Mean curves over clips plus the headline comparisons against random weights."""
    names = result["inits"]
    steps = result["steps"]
    clips = result["clips"]
    mean = {n: {str(s): float(np.mean([c["psnr"][n][str(s)] for c in clips.values()]))
                for s in steps} for n in names}
    summary: dict = {"mean_psnr": mean}
    if "random" in mean:
        last = str(max(steps))
        target = mean["random"][last]
        reach = {}
        for n in names:
            hit = [s for s in steps if mean[n][str(s)] >= target]
            reach[n] = min(hit) if hit else None
        summary["random_final"] = {"steps": int(last), "psnr": target}
        summary["first_step_reaching_random_final"] = reach
        summary["lead_over_random"] = {n: {str(s): mean[n][str(s)] - mean["random"][str(s)]
                                           for s in steps} for n in names if n != "random"}
    return summary


def plot(result: dict, path: str, title: str = "adaptation") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["steps"]
    mean = result["summary"]["mean_psnr"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = [max(s, 1) for s in steps]
    for name, curve in mean.items():
        axes[0].plot(xs, [curve[str(s)] for s in steps], marker="o", label=name)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("fine-tuning steps (0 plotted at 1)")
    axes[0].set_ylabel("mean PSNR (dB)")
    axes[0].set_title(f"{title}, mean of {len(result['clips'])} clips")
    axes[0].grid(True, alpha=0.3)
    axes[0].legend()
    if "random" in mean:
        for name in mean:
            if name == "random":
                continue
            for clip in result["clips"].values():
                c = clip["psnr"]
                axes[1].plot(xs, [c[name][str(s)] - c["random"][str(s)] for s in steps],
                             color=f"C{list(mean).index(name)}", alpha=0.35, lw=1)
            axes[1].plot(xs, [mean[name][str(s)] - mean["random"][str(s)] for s in steps],
                         color=f"C{list(mean).index(name)}", lw=2.5, label=name)
        axes[1].axhline(0, color="k", lw=0.8)
        axes[1].set_xscale("log")
        axes[1].set_xlabel("fine-tuning steps")
        axes[1].set_ylabel("PSNR minus random init (dB)")
        axes[1].set_title("gain per clip (thin) and mean (thick)")
        axes[1].grid(True, alpha=0.3)
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _load_inits(inits: list[tuple[str, str]]) -> tuple[dict[str, tuple[NeRVConfig, dict | None, str]], NeRVConfig]:
    """name -> (config, state or None, id); random inits take the last loaded init's config."""
    loaded: dict[str, tuple[NeRVConfig, dict | None, str]] = {}
    default_config = NeRVConfig()
    for name, path in inits:
        if path == "random":
            continue
        init = load_init(path)
        loaded[name] = (init.config, init.state, init.short_id)
        default_config = init.config
    # a random init's records name its shape unless it is NeRVConfig()'s (the id older records
    # carry), so a resumed run never reuses a record of another shape's random weights
    rid = "random" if default_config == NeRVConfig() else "random-" + "-".join(map(str, default_config.channels))
    for name, path in inits:
        if path == "random":
            loaded[name] = (default_config, None, rid)
    return loaded, default_config


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    torch.set_num_threads(opts.threads)
    steps = sorted({int(s) for s in opts.steps.split(",") if s.strip()})
    if not steps or steps[0] < 0:
        raise SystemExit("--steps wants non-negative step counts")
    if opts.scale < 1:
        raise SystemExit("--scale wants an integer >= 1")
    inits = _parse_inits(opts.init or list(NATIVE_DEFAULT_INITS if opts.native else DEFAULT_INITS))
    if opts.native:
        opts.lr = 2e-2 if opts.lr is None else opts.lr
        return native_main(opts, steps, inits)
    opts.lr = 5e-3 if opts.lr is None else opts.lr
    here = Path(__file__).resolve().parent
    opts.out_json = opts.out_json or str(here / "adaptation.json")
    opts.out_png = opts.out_png or str(here / "adaptation.png")
    loaded, default_config = _load_inits(inits)
    clips = list_videos(opts.data)
    if opts.clips:
        keep = set(opts.clips.split(","))
        clips = [c for c in clips if c.name in keep]
    t0 = time.monotonic()
    result: dict = {
        "settings": {"data": str(Path(opts.data).resolve()), "frames": opts.frames,
                     "max_side": opts.max_side, "batch": opts.batch, "lr": opts.lr,
                     "optimizer": "Adam (constant lr)", "loss": "0.7 L1 + 0.3 (1 - SSIM)",
                     "seed": opts.seed, "threads": opts.threads, "jobs": opts.jobs,
                     "machine": f"{platform.node()} {platform.machine()}, torch {torch.__version__}",
                     "inits": {n: {"path": p, "id": loaded[n][2]} for n, p in inits}},
        "inits": [n for n, _ in inits], "steps": steps, "clips": {},
    }
    work = [(clip, name, path) for clip in clips for name, path in inits]
    args = [(str(c), n, p, opts.frames, opts.max_side, steps, opts.lr, opts.batch, opts.seed,
             opts.threads, default_config.to_dict()) for c, n, p in work]
    if opts.jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=opts.jobs, mp_context=ctx) as pool:
            outcomes = list(pool.map(_job, args))
    else:
        outcomes = map(_job, args)
    for (clip, name, _), (shape, curve, secs) in zip(work, outcomes):
        entry = result["clips"].setdefault(clip.name, {
            "frames": shape[0], "height": shape[2], "width": shape[3], "psnr": {}, "seconds": {}})
        entry["psnr"][name] = {str(s): v for s, v in curve.items()}
        entry["seconds"][name] = secs
        if not opts.quiet:
            pts = " ".join(f"{s}:{v:.2f}" for s, v in curve.items())
            print(f"{clip.name:34s} {name:12s} {pts}  ({secs:.0f}s)", file=sys.stderr, flush=True)
    result["seconds"] = round(time.monotonic() - t0, 1)
    result["summary"] = summarize(result)
    Path(opts.out_json).write_text(json.dumps(result, indent=2))
    plot(result, opts.out_png)
    if not opts.quiet:
        _print_summary(result["summary"])
    return 0


def _print_summary(s: dict) -> None:
    for name, curve in s["mean_psnr"].items():
        print(f"mean {name:12s} " + " ".join(f"{k}:{v:.2f}" for k, v in curve.items()),
              file=sys.stderr)
    if "first_step_reaching_random_final" in s:
        print(f"first step reaching random@{s['random_final']['steps']} "
              f"({s['random_final']['psnr']:.2f} dB): {s['first_step_reaching_random_final']}",
              file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
