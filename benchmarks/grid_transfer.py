"""Grid transfer: is the init's coarse grid worth resampling to a video's size?

An init stores its coarse grid ``[A, C0, gh, gw]`` at the size it was meta-trained on (8x8 for
the shipped one, i.e. 128x128 tasks) and the encoder resamples it bilinearly to each video's
``H/S x W/S``. At native resolution that stretches a 128-pixel spatial prior over a whole HD
frame. This measures, on a few clips of ``train/`` (never ``bench/``: the point is to decide a
design, which must not be tuned on held-out data), how well each variant of the grid adapts
after k = 0, 10, 50 fitting steps, every other tensor being the init's:

* ``resampled``: the init's grid resampled bilinearly (what the encoder does today);
* ``mean``: each anchor's channels set to the init grid's spatial mean (spatially constant);
* ``random``: the grid a randomly initialised model has at that size (seeded), the rest the init's;
* ``noise`` (optional): Gaussian noise with the init grid's per-channel mean and std.

Fitting is the encoder's (``benchmarks.adaptation.encoder_fit``: Adam, cosine lr over the k
steps with 5 % warm-up, peak 5e-3, batches of 8, 0.7 L1 + 0.3 (1 - SSIM)), the metric its 8-bit
RGB PSNR over the first ``--frames`` frames. Prints a table, writes JSON.

    python -m benchmarks.grid_transfer [--init PATH] [--clips a.mp4,b.mp4] [--scale K] [--steps 0,10,50]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmarks.adaptation import adapt_psnr
from benchmarks.protocol import DATA_ROOT, Clip
from metanerv.init_file import DEFAULT_INIT, load_init
from metanerv.model import NeRVConfig, build_model, grid_size_for
from nervcore.atomic import write_bytes_atomic

TRAIN_DIR = DATA_ROOT / "train"
HELD_OUT = DATA_ROOT / "bench"
DEFAULT_CLIPS = ("airplane.mp4", "cup.mp4", "vt2people_320x192_9f.yuv")  # 640x360, 640x480, 320x192
VARIANTS = ("resampled", "mean", "random", "noise")
DEFAULT_VARIANTS = ("resampled", "mean", "random")
DEFAULT_OUT = Path(__file__).resolve().parent / "work" / "grid_transfer.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.grid_transfer",
                                description="Fit train/ clips from an init with its grid resampled, "
                                            "made constant or random; PSNR after k steps.")
    p.add_argument("--init", default=str(DEFAULT_INIT), help="init file (default: the shipped one)")
    p.add_argument("--data", default=str(TRAIN_DIR), help="folder of training clips (never bench/)")
    p.add_argument("--clips", default=",".join(DEFAULT_CLIPS), help="comma-separated file names")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (from the first)")
    p.add_argument("--scale", type=int, default=1, help="integer box reduction of the clips (1: native)")
    p.add_argument("--steps", default="0,10,50", help="comma-separated step counts (each its own fit)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--lr", type=float, default=5e-3, help="peak learning rate (the encoder's)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-json", default=str(DEFAULT_OUT))
    p.add_argument("--quiet", action="store_true")
    return p


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def grid_variant(variant: str, grid: Tensor, config: NeRVConfig, grid_hw: tuple[int, int],
                 seed: int) -> Tensor:
    """The grid to start from, already at ``grid_hw`` (``resampled`` is left to build_model)."""
    a, c = grid.shape[:2]
    if variant == "resampled":
        return grid.clone()
    if variant == "mean":
        return grid.mean(dim=(2, 3), keepdim=True).expand(a, c, *grid_hw).clone()
    if variant == "random":
        return build_model(config, grid_hw, None, seed=seed).grid.detach().clone()
    if variant == "noise":
        gen = torch.Generator().manual_seed(seed)
        mean = grid.mean(dim=(2, 3), keepdim=True)
        std = grid.std(dim=(2, 3), keepdim=True) if grid[0, 0].numel() > 1 else torch.zeros_like(mean)
        return mean + std * torch.randn(a, c, *grid_hw, generator=gen)
    raise ValueError(f"unknown grid variant {variant!r}")


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    torch.set_num_threads(opts.threads)
    steps = sorted({int(s) for s in opts.steps.split(",") if s.strip()})
    variants = [v.strip() for v in opts.variants.split(",") if v.strip()]
    if not steps or steps[0] < 0:
        raise SystemExit("--steps wants non-negative step counts")
    if bad := [v for v in variants if v not in VARIANTS]:
        raise SystemExit(f"unknown --variants {bad}; choose from {', '.join(VARIANTS)}")
    if opts.scale < 1 or opts.frames < 1:
        raise SystemExit("--scale and --frames must be at least 1")
    data = Path(opts.data)
    names = [c.strip() for c in opts.clips.split(",") if c.strip()]
    paths = [data / n for n in names]
    for p in [data] + paths:
        if _inside(p, HELD_OUT) or HELD_OUT.resolve() == p.resolve():
            raise SystemExit(f"{p}: the held-out benchmark folder is never used to decide a design; "
                             "use train/ clips")
    if missing := [str(p) for p in paths if not p.exists()]:
        raise SystemExit(f"no such clip: {', '.join(missing)}")
    init = load_init(opts.init)
    config = init.config
    result: dict = {
        "settings": {"init": {"path": str(opts.init), "id": init.short_id,
                              "stored_grid": list(init.state["grid"].shape)},
                     "data": str(data.resolve()), "frames": opts.frames, "scale": opts.scale,
                     "steps": steps, "variants": variants, "lr": opts.lr, "batch": opts.batch,
                     "seed": opts.seed, "fitting": "encoder: Adam, cosine over k steps, 5 % warm-up, "
                                                   "0.7 L1 + 0.3 (1 - SSIM)",
                     "metric": "8-bit RGB PSNR, mean of per-frame MSE",
                     "machine": f"{platform.node()} {platform.machine()}, torch {torch.__version__}, "
                                f"{opts.threads} thread(s)"},
        "clips": {},
    }
    t0 = time.monotonic()
    for path in paths:
        frames = Clip(path.name, path, frames=opts.frames, downscale=opts.scale).load().frames
        n, h, w, _ = frames.shape
        grid_hw = grid_size_for(h, w, config)
        entry = {"frames": n, "height": h, "width": w, "grid_hw": list(grid_hw), "psnr": {}, "seconds": {}}
        for variant in variants:
            state = dict(init.state)
            state["grid"] = grid_variant(variant, init.state["grid"], config, grid_hw, opts.seed)
            entry["psnr"][variant], entry["seconds"][variant] = {}, {}
            for k in steps:
                c0 = time.monotonic()
                value = adapt_psnr(frames, config, state, k, opts.lr, opts.batch, opts.seed)
                entry["psnr"][variant][str(k)] = value
                entry["seconds"][variant][str(k)] = round(time.monotonic() - c0, 1)
                if not opts.quiet:
                    print(f"{path.name:28s} {w}x{h} {variant:9s} {k:4d} steps {value:6.2f} dB",
                          file=sys.stderr, flush=True)
        result["clips"][path.name] = entry
    result["mean_psnr"] = {v: {str(k): float(np.mean([c["psnr"][v][str(k)] for c in result["clips"].values()]))
                               for k in steps} for v in variants}
    result["seconds"] = round(time.monotonic() - t0, 1)
    out = Path(opts.out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, json.dumps(result, indent=2).encode(), fsync=False)
    print(format_table(result))
    return 0


def format_table(result: dict) -> str:
    """A markdown table: one row per (clip, variant) and the means, PSNR at each k."""
    steps = result["settings"]["steps"]
    lines = ["| clip | size | grid | " + " | ".join(f"k={k}" for k in steps) + " |",
             "|---|---|---|" + "---|" * len(steps)]
    for name, c in result["clips"].items():
        for v, curve in c["psnr"].items():
            lines.append(f"| {name} | {c['width']}x{c['height']} | {v} | "
                         + " | ".join(f"{curve[str(k)]:.2f}" for k in steps) + " |")
    for v, curve in result["mean_psnr"].items():
        lines.append(f"| mean | | {v} | " + " | ".join(f"{curve[str(k)]:.2f}" for k in steps) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
