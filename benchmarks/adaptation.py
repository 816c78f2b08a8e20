"""Adaptation benchmark: how fast does each init fit clips it has never seen?

For every clip of the benchmark folder (never used for meta-training), each init is fine-tuned
with identical settings -- Adam, the codec's reconstruction loss (0.7 L1 + 0.3 (1 - SSIM)),
random batches of frames as in the encoder, the same batch order for every init -- and the
PSNR of all the clip's frames is recorded after 0, 10, 25, 50, 100, 250 and 500 steps. Clips
are cut to their first 16 frames and downscaled to a 128-pixel longer side so the whole run
(7 clips x 5 inits, two worker processes) fits in roughly 20-30 minutes on 2 CPU cores.
Writes ``benchmarks/adaptation.json`` (every curve) and ``benchmarks/adaptation.png``.

    python -m benchmarks.adaptation [--out-json F] [--out-png F] [--init NAME=PATH ...]
"""
from __future__ import annotations

import argparse
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

from nervcore.video_io import read_video
from metanerv.init_file import DEFAULT_INIT, load_init
from metanerv.losses import psnr, reconstruction_loss
from metanerv.model import NeRVConfig, build_model, frame_times, grid_size_for, pad_to_stride
from metanerv.tasks import list_videos

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BENCH_DIR = DATA / "bench"
INIT_DIR = Path(__file__).resolve().parent / "inits"
DEFAULT_INITS = (f"shipped={DEFAULT_INIT}", "random=random",
                 f"full-short={INIT_DIR / 'full_short.safetensors'}",
                 f"no-spatial={INIT_DIR / 'no_spatial.safetensors'}",
                 f"no-temporal={INIT_DIR / 'no_temporal.safetensors'}")
DEFAULT_STEPS = (0, 10, 25, 50, 100, 250, 500)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.adaptation",
                                description="PSNR after N fine-tuning steps from each init.")
    p.add_argument("--data", default=str(BENCH_DIR), help="folder of clips")
    p.add_argument("--init", action="append", default=None, metavar="NAME=PATH",
                   help="an init to compare ('random' as PATH: random weights); repeatable")
    p.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)),
                   help="comma-separated step counts to report")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (from the first)")
    p.add_argument("--max-side", type=int, default=128, help="downscale clips to this longer side")
    p.add_argument("--batch", type=int, default=8, help="frames per fine-tuning step")
    p.add_argument("--lr", type=float, default=5e-3, help="Adam step size (constant)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (more only with OMP_WAIT_POLICY=PASSIVE on a busy machine)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    p.add_argument("--clips", default=None, help="comma-separated clip names to keep")
    p.add_argument("--out-json", default=str(Path(__file__).resolve().parent / "adaptation.json"))
    p.add_argument("--out-png", default=str(Path(__file__).resolve().parent / "adaptation.png"))
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


def _job(a: tuple) -> tuple[list[int], dict[int, float], float]:
    """One (clip, init) curve; a top-level function so worker processes can run it."""
    clip, name, path, frames, max_side, steps, lr, batch, seed, threads, random_config = a
    torch.set_num_threads(threads)
    x = load_clip(Path(clip), frames, max_side)
    if path == "random":
        config, state = NeRVConfig.from_dict(random_config), None
    else:
        init = load_init(path)
        config, state = init.config, init.state
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


def plot(result: dict, path: str) -> None:
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
    axes[0].set_title(f"adaptation, mean of {len(result['clips'])} clips")
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


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    torch.set_num_threads(opts.threads)
    steps = sorted({int(s) for s in opts.steps.split(",") if s.strip()})
    inits = _parse_inits(opts.init or list(DEFAULT_INITS))
    loaded: dict[str, tuple[NeRVConfig, dict | None, str]] = {}
    default_config = NeRVConfig()
    for name, path in inits:
        if path == "random":
            continue
        init = load_init(path)
        loaded[name] = (init.config, init.state, init.short_id)
        default_config = init.config
    for name, path in inits:
        if path == "random":
            loaded[name] = (default_config, None, "random")
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
        s = result["summary"]
        for name, curve in s["mean_psnr"].items():
            print(f"mean {name:12s} " + " ".join(f"{k}:{v:.2f}" for k, v in curve.items()),
                  file=sys.stderr)
        if "first_step_reaching_random_final" in s:
            print(f"first step reaching random@{s['random_final']['steps']} "
                  f"({s['random_final']['psnr']:.2f} dB): {s['first_step_reaching_random_final']}",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
