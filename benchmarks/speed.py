"""Speed of the CPU fit loop: the encoder's training step as written versus leaner variants.

``old`` reproduces ``codec/finetune.py::_train`` step for step: the decode weights as a dict of
leaf tensors evaluated with ``torch.func.functional_call``, ``torch.optim.Adam`` with its
defaults, the cosine learning rate written into the param group every step, a
``torch.randperm`` batch, ``reconstruction_loss`` (0.7 L1 + 0.3 (1 - SSIM)) and, for the
progress bar, ``psnr(...)`` turned into a Python float (a sync) and smoothed every step.
Every other variant changes one thing (or, for ``lean``, all the objective-preserving
things at once); ``lean_l1`` and ``lean_mse`` also change the loss, so they are speed
references, not drop-in replacements.

Variants of one (size, threads) cell are timed in interleaved rounds (old, v1, v2, ..., old,
v1, ...) in one process, and each ratio is the median over rounds of old's time over the
variant's: slow drift of a shared machine's load hits both sides of a ratio alike.

Also measured: the per-pixel cost of one training step (the presets' cost model,
``codec/presets.py``) at batch 2 and 8, 1 and 2 threads, with wall and process CPU time; the
top CPU ops of ``old`` and ``lean`` (``torch.profiler``); decode speed (frames/s of a plain
``no_grad`` forward pass, batch 8) of the default model at CIF.

    python -m benchmarks.speed [--scale 1.0] [--sizes 176x144,352x288,832x480] [--threads 1,2]
                               [--out benchmarks/results/speed.json] [--no-profile]

Writes the JSON and a markdown summary next to it (``speed.md``). ``--scale`` multiplies the
time spent per timing (0.6 s of steps in the comparison, 1.5 s in the calibration, at least one
step); at 832x480 one step of 8 frames already takes seconds, so that size dominates the run.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call
from tqdm import tqdm

from metanerv.losses import psnr, reconstruction_loss
from metanerv.model import NeRVConfig, build_model, decode_param_names, frame_times, grid_size_for

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SIZES = "176x144,352x288,832x480"
GOP_FRAMES = 16  # frames the batches are drawn from (more than a batch, as in a real GOP)


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """The v1 encoder's schedule (linear warm-up, then cosine to zero): what this script times."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass(frozen=True)
class Variant:
    functional: bool = True  # functional_call on a dict of leaf tensors (as finetune._train)
    sync: bool = True  # per-step psnr(...) -> float for the progress bar
    adam: str = "default"  # "default" (for-loop on CPU) | "foreach" | "fused"
    loss: str = "l1ssim"  # "l1ssim" (the codec's) | "l1" | "mse": the last two change the objective

    @property
    def same_objective(self) -> bool:
        return self.loss == "l1ssim"


LEAN = Variant(functional=False, sync=False, adam="fused")
VARIANTS: dict[str, Variant] = {
    "old": Variant(),
    "no_sync": Variant(sync=False),
    "module_params": Variant(functional=False),
    "adam_foreach": Variant(adam="foreach"),
    "adam_fused": Variant(adam="fused"),
    "lean": LEAN,
    "lean_l1": replace(LEAN, loss="l1"),
    "lean_mse": replace(LEAN, loss="mse"),
}


class Loop:
    """One variant's model, optimizer and frames; ``step()`` is one training step."""

    def __init__(self, v: Variant, width: int, height: int, batch: int, total_steps: int = 600,
                 lr: float = 5e-3, seed: int = 0) -> None:
        cfg = NeRVConfig()
        self.v, self.batch, self.total, self.peak = v, batch, total_steps, lr
        self.model = build_model(cfg, grid_size_for(height, width, cfg), seed=seed)
        hp, wp = self.model.frame_hw
        self.pixels = hp * wp  # padded pixels per frame: what the convolutions see
        g = torch.Generator().manual_seed(seed)
        self.frames = torch.rand(GOP_FRAMES, 3, hp, wp, generator=g)
        self.gen = torch.Generator().manual_seed(seed + 1)
        params = dict(self.model.named_parameters())
        names = decode_param_names(self.model)
        if v.functional:
            self.free = {k: params[k].detach().clone().requires_grad_(True) for k in names}
            leaves = list(self.free.values())
        else:
            for k, p in params.items():
                p.requires_grad_(k in names)
            leaves = [params[k] for k in names]
        kw = {"foreach": True} if v.adam == "foreach" else {"fused": True} if v.adam == "fused" else {}
        self.opt = torch.optim.Adam(leaves, lr=lr, **kw)
        self.bar = tqdm(total=10 ** 9, file=io.StringIO(), disable=not v.sync, mininterval=0.1)
        self.smooth: float | None = None
        self.i = 0

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.v.loss == "l1":
            return (pred - target).abs().mean()
        if self.v.loss == "mse":
            return F.mse_loss(pred, target)
        return reconstruction_loss(pred, target, 0.7)

    def step(self) -> None:
        n = self.frames.shape[0]
        for g in self.opt.param_groups:
            g["lr"] = cosine_lr(self.i % self.total, self.total, self.peak, max(self.total // 20, 1))
        idx = torch.randperm(n, generator=self.gen)[: self.batch] if n > self.batch else torch.arange(n)
        target = self.frames[idx]
        t = frame_times(idx, n)
        pred = functional_call(self.model, self.free, (t,)) if self.v.functional else self.model(t)
        loss = self.loss(pred, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.v.sync:
            p = float(psnr(pred.detach(), target))
            self.smooth = p if self.smooth is None else 0.9 * self.smooth + 0.1 * p
            self.bar.update(1)
            self.bar.set_postfix(psnr=f"{self.smooth:.2f}dB")
        self.i += 1


def timed(loop: Loop, steps: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per step over ``steps`` steps."""
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loop.step()
    return (time.perf_counter() - w0) / steps, (time.process_time() - c0) / steps


def steps_for(seconds_per_step: float, budget: float) -> int:
    return max(1, int(round(budget / max(seconds_per_step, 1e-6))))


def compare(width: int, height: int, threads: int, batch: int, scale: float,
            names: list[str]) -> dict:
    """Interleaved rounds of every variant in ``names`` (the first is the reference)."""
    torch.set_num_threads(threads)
    loops = {n: Loop(VARIANTS[n], width, height, batch) for n in names}
    warm = {}
    for n, lp in loops.items():
        lp.step()  # first step allocates the optimizer state
        warm[n] = timed(lp, 1)[0]
    step_s = statistics.median(warm.values())
    rounds = 5 if step_s < 0.5 else 3  # 832x480 x 8 frames: one step per timing, three rounds
    steps = steps_for(step_s, 0.6 * scale)
    per: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for _ in range(rounds):
        for n, lp in loops.items():
            per[n].append(timed(lp, steps))
    ref = names[0]
    out = {"width": width, "height": height, "padded_pixels": loops[ref].pixels, "threads": threads,
           "batch": batch, "rounds": rounds, "steps_per_timing": steps, "variants": {}}
    for n in names:
        walls = [w for w, _ in per[n]]
        cpus = [c for _, c in per[n]]
        ratios = [r[0] / w for r, w in zip(per[ref], walls)]
        cpu_ratios = [r[1] / c for r, c in zip(per[ref], cpus)]
        out["variants"][n] = {
            "wall_s_per_step_min": min(walls), "wall_s_per_step_median": statistics.median(walls),
            "cpu_s_per_step_median": statistics.median(cpus),
            "steps_per_s": 1.0 / statistics.median(walls),
            "speedup_vs_old": statistics.median(ratios), "speedup_range": [min(ratios), max(ratios)],
            "cpu_speedup_vs_old": statistics.median(cpu_ratios),
            "same_objective": VARIANTS[n].same_objective, "variant": asdict(VARIANTS[n]),
        }
    return out


def calibrate(width: int, height: int, threads: int, batch: int, scale: float) -> dict:
    """Per-pixel cost of the encoder's step as written today (variant ``old``)."""
    torch.set_num_threads(threads)
    lp = Loop(VARIANTS["old"], width, height, batch)
    lp.step()
    w1 = timed(lp, 1)[0]
    steps = steps_for(w1, 1.5 * scale)
    runs = [timed(lp, steps) for _ in range(2)]
    wall = min(w for w, _ in runs)
    cpu = min(c for _, c in runs)
    px = batch * lp.pixels
    return {"width": width, "height": height, "padded_pixels": lp.pixels, "threads": threads,
            "batch": batch, "steps": 2 * steps, "wall_s_per_step": wall, "cpu_s_per_step": cpu,
            "wall_ns_per_pixel": 1e9 * wall / px, "cpu_ns_per_pixel": 1e9 * cpu / px}


def profile_ops(width: int, height: int, threads: int, batch: int, scale: float, name: str,
                top: int = 12) -> dict:
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    lp = Loop(VARIANTS[name], width, height, batch)
    lp.step()
    steps = steps_for(timed(lp, 1)[0], 1.0 * scale)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            lp.step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {"variant": name, "width": width, "height": height, "threads": threads, "batch": batch,
            "steps": steps,
            "top_ops": [{"op": e.key, "calls_per_step": e.count / steps,
                         "self_cpu_ms_per_step": e.self_cpu_time_total / 1000.0 / steps,
                         "self_cpu_pct": 100.0 * e.self_cpu_time_total / total} for e in rows]}


def decode_fps(width: int, height: int, threads: int, batch: int, scale: float) -> dict:
    """Frames/s of a plain no_grad forward pass of the default model (no conversion to uint8)."""
    torch.set_num_threads(threads)
    cfg = NeRVConfig()
    model = build_model(cfg, grid_size_for(height, width, cfg)).eval()
    n = 64
    t_all = frame_times(list(range(n)), n)
    with torch.no_grad():
        model(t_all[:batch])
        w0 = time.perf_counter()
        model(t_all[:batch])
        one = time.perf_counter() - w0
        reps = max(1, int(round(1.5 * scale / max(one, 1e-6))))
        best = math.inf
        for _ in range(2):
            w0 = time.perf_counter()
            for r in range(reps):
                i = (r * batch) % n
                model(t_all[i:i + batch])
            best = min(best, (time.perf_counter() - w0) / reps)
    return {"width": width, "height": height, "threads": threads, "batch": batch,
            "frames_per_s": batch / best, "ms_per_frame": 1000.0 * best / batch}


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def parse_sizes(spec: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in s.lower().split("x")) for s in spec.split(",") if s]  # type: ignore[misc]


def markdown(res: dict) -> str:
    lines = [f"# CPU fit-loop speed ({res['date']}, {res['machine']['cpu']}, "
             f"{res['machine']['cores']} cores, torch {res['machine']['torch']})", "",
             f"Load average at start / end: {res['machine']['loadavg']} / {res['loadavg_end']} "
             "(shared machine: absolute times are upper bounds, ratios are from interleaved rounds).",
             "", "## Steps/s and speed-up over the encoder's loop as written (`old`)", "",
             "| size | threads | batch | " + " | ".join(res["variant_names"]) + " |",
             "|---|---|---|" + "---|" * len(res["variant_names"])]
    for c in res["compare"]:
        cells = []
        for n in res["variant_names"]:
            v = c["variants"][n]
            cells.append(f"{v['steps_per_s']:.2f}/s" if n == "old"
                         else f"×{v['speedup_vs_old']:.2f} (cpu ×{v['cpu_speedup_vs_old']:.2f})")
        lines.append(f"| {c['width']}x{c['height']} | {c['threads']} | {c['batch']} | " + " | ".join(cells) + " |")
    lines += ["", "`lean` = module parameters + no per-step sync + fused Adam (same objective); "
              "`lean_l1` / `lean_mse` also change the loss.", "",
              "## Per-pixel cost of one training step (`old`)", "",
              "| size | threads | batch | wall s/step | CPU s/step | wall ns/px | CPU ns/px |",
              "|---|---|---|---|---|---|---|"]
    for c in res["calibration"]:
        lines.append(f"| {c['width']}x{c['height']} | {c['threads']} | {c['batch']} | {c['wall_s_per_step']:.3f} "
                     f"| {c['cpu_s_per_step']:.3f} | {c['wall_ns_per_pixel']:.0f} | {c['cpu_ns_per_pixel']:.0f} |")
    lines += ["", "## Decode (no_grad forward, batch 8)", "", "| size | threads | frames/s | ms/frame |",
              "|---|---|---|---|"]
    for d in res["decode"]:
        lines.append(f"| {d['width']}x{d['height']} | {d['threads']} | {d['frames_per_s']:.1f} | {d['ms_per_frame']:.1f} |")
    for p in res["profile"]:
        lines += ["", f"## Top CPU ops: `{p['variant']}` at {p['width']}x{p['height']}, "
                  f"{p['threads']} threads, batch {p['batch']}", "",
                  "| op | calls/step | self ms/step | % |", "|---|---|---|---|"]
        for o in p["top_ops"][:8]:
            lines.append(f"| {o['op']} | {o['calls_per_step']:.0f} | {o['self_cpu_ms_per_step']:.1f} "
                         f"| {o['self_cpu_pct']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="time per measurement multiplier")
    ap.add_argument("--sizes", default=DEFAULT_SIZES)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma list; old is always first")
    ap.add_argument("--calib-batches", default="2,8")
    ap.add_argument("--calib-sizes", default=None, help="sizes for the cost calibration (default: --sizes)")
    ap.add_argument("--skip-compare", action="store_true", help="only calibration, decode and profile")
    ap.add_argument("--profile-size", default="352x288", help="sizes to profile ('' for none)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "speed.json"))
    a = ap.parse_args(argv)
    sizes = parse_sizes(a.sizes)
    threads = [int(t) for t in a.threads.split(",") if t]
    names = ["old"] + [n for n in a.variants.split(",") if n and n != "old"]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    res: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                 "scale": a.scale, "variant_names": names, "compare": [], "calibration": [],
                 "profile": [], "decode": []}
    t_start = time.perf_counter()
    for w, h in ([] if a.skip_compare else sizes):
        for th in threads:
            c = compare(w, h, th, a.batch, a.scale, names)
            res["compare"].append(c)
            print(f"{w}x{h} t{th}: old {c['variants']['old']['steps_per_s']:.2f} steps/s; " + ", ".join(
                f"{n} x{c['variants'][n]['speedup_vs_old']:.2f}" for n in names[1:]), flush=True)
    for w, h in parse_sizes(a.calib_sizes if a.calib_sizes is not None else a.sizes):
        for th in threads:
            for b in [int(x) for x in a.calib_batches.split(",") if x]:
                c = calibrate(w, h, th, b, a.scale)
                res["calibration"].append(c)
                print(f"calib {w}x{h} t{th} b{b}: {c['wall_s_per_step']:.3f} s/step wall, "
                      f"{c['wall_ns_per_pixel']:.0f} ns/px wall, {c['cpu_ns_per_pixel']:.0f} ns/px cpu", flush=True)
    for th in threads:
        d = decode_fps(352, 288, th, 8, a.scale)
        res["decode"].append(d)
        print(f"decode 352x288 t{th}: {d['frames_per_s']:.1f} frames/s", flush=True)
    if not a.no_profile:
        for w, h in parse_sizes(a.profile_size):
            for n in ("old", "lean"):
                p = profile_ops(w, h, max(threads), a.batch, a.scale, n)
                res["profile"].append(p)
                print(f"profile {n} {w}x{h}: " + ", ".join(
                    f"{o['op']} {o['self_cpu_pct']:.0f}%" for o in p["top_ops"][:5]), flush=True)
    res["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    res["seconds"] = time.perf_counter() - t_start
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(res))
    print(f"wrote {out} and {out.with_suffix('.md')} in {res['seconds']:.0f} s")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
