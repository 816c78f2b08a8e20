"""Speed of the encoder's v2 fit loop: the loop as of commit 4b943a8 against the current one.

``old`` is ``codec.finetune`` of commit 4b943a8 itself, checked out into a git worktree and
imported from there (:mod:`benchmarks.baseline`: per-tensor rate graph, per-step ``fork_rng``
+ ``manual_seed`` for the rate noise, autograd SSIM); ``new`` is
``codec.finetune.run_fit`` (one flat residual vector, device generators, the fused L1 + SSIM
loss with its hand-written gradient). Both fit the shipped default init's model, delta coded,
at q5's rate weight, on random frames of the size; only time is measured here (quality:
``--quality-clip``, below).

Each (size, threads) cell times old and new in interleaved rounds in one process, and the
ratio is the median over rounds of old's time over new's: a shared machine's drifting load
hits both sides alike. Also: the top ops of each loop (``torch.profiler``), decode speed
(frames/s of a plain ``no_grad`` forward, batch 8) and, with ``--quality-clip``, PSNR and
bpp of ``codec.encode_ladder`` with the old and the new loop.

    python -m benchmarks.speed [--scale 1.0] [--sizes 176x144,352x288,832x480] [--threads 1,2]
                               [--device cpu|cuda] [--quality-clip PATH] [--out ...]

``--device cuda`` times the QCIF and 1080p steps (batch 8) and decode fps (CIF, 1080p) on a
GPU, with the device synchronised around every timing. Writes the JSON and a markdown table
next to it (default ``benchmarks/results/speed_v2.json`` / ``.md``, ``speed_v2_cuda.*`` on a GPU).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmarks import baseline
from codec import finetune as new_fit
from codec.ladder import LADDER
from metanerv.model import NeRVConfig, build_model, frame_times, grid_size_for, init_state_for

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SIZES = {"cpu": "176x144,352x288,832x480", "cuda": "176x144,1920x1080"}
DEFAULT_DECODE = {"cpu": "352x288", "cuda": "352x288,1920x1080"}
GOP_FRAMES = 16  # frames the batches are drawn from (more than a batch, as in a real GOP)
LOOPS = {"new": new_fit, "compiled": new_fit}  # compiled: new with FitSettings.compile; "old": _loop


def _loop(kind: str):
    """The fit module of loop ``kind``; ``old`` is imported from a worktree of ``BASELINE_REF``."""
    if kind == "old" and "old" not in LOOPS:
        LOOPS["old"], = baseline.load("codec.finetune")
    return LOOPS[kind]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Loop:
    """One loop's model, frames and fit state; ``run(k)`` advances the fit by ``k`` steps."""

    def __init__(self, kind: str, width: int, height: int, batch: int, device: torch.device,
                 init: str = "default", seed: int = 0) -> None:
        from codec.inits import resolve_init

        self.impl, self.device = _loop(kind), device
        init_file = resolve_init(init)
        cfg = init_file.config if init_file else NeRVConfig()
        ghw = grid_size_for(height, width, cfg)
        self.base = ({k: v.to(device) for k, v in init_state_for(init_file.state, ghw).items()}
                     if init_file else None)
        self.model = build_model(cfg, ghw, init_file.state if init_file else None, seed=seed).to(device)
        hp, wp = self.model.frame_hw
        self.padded_pixels = hp * wp
        self.pixels = GOP_FRAMES * width * height
        g = torch.Generator().manual_seed(seed)
        self.frames = torch.rand(GOP_FRAMES, 3, hp, wp, generator=g).to(device)
        self.settings = new_fit.FitSettings(steps=300, lr=2e-2, batch=batch, lam=LADDER[5].lam, seed=seed,
                                            compile=kind == "compiled")
        self.state = self.impl.start_fit(self.model, self.base, self.settings)

    def run(self, steps: int) -> None:
        self.impl.run_fit(self.model, self.frames, self.base, self.state, self.settings,
                          self.state.step + steps, self.pixels, progress=False)


def timed(loop: Loop, steps: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per step over ``steps`` steps."""
    _sync(loop.device)
    w0, c0 = time.perf_counter(), time.process_time()
    loop.run(steps)
    _sync(loop.device)
    return (time.perf_counter() - w0) / steps, (time.process_time() - c0) / steps


def steps_for(seconds_per_step: float, budget: float) -> int:
    return max(1, int(round(budget / max(seconds_per_step, 1e-6))))


def compare(width: int, height: int, threads: int, batch: int, scale: float,
            device: torch.device, rounds: int | None = None, kinds: tuple[str, ...] = ("old", "new")) -> dict:
    """Interleaved rounds of the loops ``kinds`` (``old`` first) at one size: steps/s and each
    one's speed-up over ``old``."""
    torch.set_num_threads(threads)
    loops = {k: Loop(k, width, height, batch, device) for k in kinds}
    warm = {}
    for k, lp in loops.items():
        lp.run(1)  # the first step allocates the optimizer state (and compiles)
        warm[k] = timed(lp, 1)[0]
    step_s = max(warm.values())
    rounds = rounds or (5 if step_s < 0.5 else 3)
    steps = steps_for(step_s, 1.0 * scale)
    per: dict[str, list[tuple[float, float]]] = {k: [] for k in loops}
    for r in range(rounds):
        order = list(loops) if r % 2 == 0 else list(loops)[::-1]  # none always goes first
        for k in order:
            per[k].append(timed(loops[k], steps))
    out = {"width": width, "height": height, "padded_pixels": loops["old"].padded_pixels,
           "threads": threads, "batch": batch, "device": device.type, "rounds": rounds,
           "steps_per_timing": steps, "loadavg_1min_after": _load1(), "loops": {}}
    for k in loops:
        walls, cpus = [w for w, _ in per[k]], [c for _, c in per[k]]
        ratios = [o[0] / w for o, w in zip(per["old"], walls)]
        cpu_ratios = [o[1] / c for o, c in zip(per["old"], cpus)]
        out["loops"][k] = {
            "s_per_step": statistics.median(walls), "steps_per_s": 1.0 / statistics.median(walls),
            "cpu_s_per_step": statistics.median(cpus),
            "speedup": statistics.median(ratios), "speedup_range": [min(ratios), max(ratios)],
            "cpu_speedup": statistics.median(cpu_ratios),
            "ns_per_pixel": 1e9 * statistics.median(walls) / (batch * loops[k].padded_pixels)}
    return out


def profile_ops(width: int, height: int, threads: int, batch: int, scale: float, kind: str,
                device: torch.device, top: int = 12) -> dict:
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    lp = Loop(kind, width, height, batch, device)
    lp.run(1)
    steps = steps_for(timed(lp, 1)[0], 1.0 * scale)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        lp.run(steps)
        _sync(device)
    events = list(prof.key_averages())
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {"loop": kind, "width": width, "height": height, "threads": threads, "batch": batch,
            "steps": steps, "ops_per_step": sum(e.count for e in events) / steps,
            "top_ops": [{"op": e.key, "calls_per_step": e.count / steps,
                         "self_cpu_ms_per_step": e.self_cpu_time_total / 1000.0 / steps,
                         "self_cpu_pct": 100.0 * e.self_cpu_time_total / total} for e in rows]}


def decode_fps(width: int, height: int, threads: int, batch: int, scale: float,
               device: torch.device) -> dict:
    """Frames/s of a plain no_grad forward pass of the default model (no conversion to uint8)."""
    torch.set_num_threads(threads)
    cfg = NeRVConfig()
    model = build_model(cfg, grid_size_for(height, width, cfg)).to(device).eval()
    n = 64
    t_all = frame_times(list(range(n)), n).to(device)
    with torch.no_grad():
        model(t_all[:batch])
        _sync(device)
        w0 = time.perf_counter()
        model(t_all[:batch])
        _sync(device)
        one = time.perf_counter() - w0
        reps = max(1, int(round(1.5 * scale / max(one, 1e-6))))
        best = math.inf
        for _ in range(2):
            _sync(device)
            w0 = time.perf_counter()
            for r in range(reps):
                i = (r * batch) % n
                model(t_all[i:i + batch])
            _sync(device)
            best = min(best, (time.perf_counter() - w0) / reps)
    return {"width": width, "height": height, "threads": threads, "batch": batch, "device": device.type,
            "frames_per_s": batch / best, "ms_per_frame": 1000.0 * best / batch}


@contextmanager
def _encoder_loop(kind: str):
    """``codec.gopfit`` (the encoder's GOP fit) with the fit functions of loop ``kind`` (restored on exit)."""
    import codec.gopfit as enc

    impl = _loop(kind)
    names = ("start_fit", "run_fit", "finish_fit")
    missing = [n for n in names if not hasattr(enc, n)]
    if missing:
        raise RuntimeError(f"codec.gopfit no longer imports {missing}: update benchmarks/speed.py")
    saved = {n: getattr(enc, n) for n in names}
    start = impl.start_fit

    def start_fit(*args, **kwargs):
        state = start(*args, **kwargs)
        if not hasattr(state, "rollbacks"):  # the old loop predates the divergence guard
            state.rollbacks = 0
        return state

    def run_fit(*args, shown_pixels=None, **kwargs):  # the old loop's bar has no shown_pixels
        return impl.run_fit(*args, **kwargs)

    wrapped = {"start_fit": start_fit, "run_fit": run_fit if kind == "old" else impl.run_fit}
    try:
        for n in names:
            setattr(enc, n, wrapped.get(n) or getattr(impl, n))
        yield
    finally:
        for n, f in saved.items():
            setattr(enc, n, f)


def quality(clip: str, frames: int, steps: int, q: int, seeds: list[int],
            device: str = "cpu") -> list[dict]:
    """PSNR (of the decoded file) and bpp (its bytes) of ``encode_ladder`` with each loop."""
    import tempfile

    from codec.encoder import encode_ladder
    from nervcore.video_io import read_video

    video = read_video(clip, frames=slice(0, frames))
    rows = []
    for seed in seeds:
        for kind in ("old", "new"):
            with _encoder_loop(kind), tempfile.TemporaryDirectory() as work:
                r = encode_ladder(video, {q: Path(work) / "out.nerv"}, steps=steps, seed=seed,
                                  device=device, progress=False)[q]
            rows.append({"loop": kind, "seed": seed, "clip": Path(clip).name, "frames": video.num_frames,
                         "steps": steps, "quality": q, "psnr": r.psnr, "bpp": r.bpp,
                         "bytes": r.num_bytes, "encode_seconds": r.encode_seconds})
            print(f"quality {kind} seed {seed}: {r.psnr:.3f} dB, {r.bpp:.5f} bpp, "
                  f"{r.encode_seconds:.0f} s", flush=True)
    return rows


def _load1() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def machine(device: torch.device) -> dict:
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def parse_sizes(spec: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in s.lower().split("x")) for s in spec.split(",") if s]  # type: ignore[misc]


def _fmt_load(load: list[float] | None) -> str:
    return "n/a" if not load else ", ".join(f"{x:.2f}" for x in load)


def markdown(res: dict) -> str:
    m = res["machine"]
    where = m["gpu"] or f"{m['cpu']}, {m['cores']} cores"
    commits = ", ".join(res.get("commits", [res["commit"]]))
    lines = [f"# Fit-loop speed, v2 ({res['date']}, {where}, torch {m['torch']}, commit {commits})", "",
             f"Load average (1, 5, 15 min) at start / end: {_fmt_load(m['loadavg'])} / "
             f"{_fmt_load(res['loadavg_end'])}; this benchmark's own threads count in it. On a shared "
             "machine absolute times are upper bounds; ratios come from interleaved rounds.", ""]
    if res["compare"]:
        kinds = [k for k in ("old", "new", "compiled") if any(k in c["loops"] for c in res["compare"])]
        lines += ["## Steps/s: the loop of 4b943a8 (`old`) and `codec.finetune.run_fit` (`new`)", "",
                  "| size | device | threads | batch | " + " | ".join(f"{k} steps/s" for k in kinds) + " | "
                  + " | ".join(f"{k} / old: wall (range), CPU" for k in kinds[1:]) + " |",
                  "|---|---|---|---|" + "---|" * (2 * len(kinds) - 1)]
        for c in res["compare"]:
            rates = [f"{c['loops'][k]['steps_per_s']:.2f}" if k in c["loops"] else "–" for k in kinds]
            gains = []
            for k in kinds[1:]:
                v = c["loops"].get(k)
                gains.append("–" if v is None else f"×{v['speedup']:.2f} ({v['speedup_range'][0]:.2f}–"
                             f"{v['speedup_range'][1]:.2f}), ×{v['cpu_speedup']:.2f}")
            lines.append(f"| {c['width']}x{c['height']} | {c['device']} | {c['threads']} | {c['batch']} | "
                         + " | ".join(rates + gains) + " |")
        lines += ["", "Each ratio is the median over interleaved rounds of old's time over the loop's "
                  "(wall clock, then process CPU time); all fit the default init's model at q5's rate "
                  "weight. `compiled` = `new` with `FitSettings.compile` (the loss through "
                  "`torch.compile`; its compile time is not in the figure)."]
    if res["quality"]:
        lines += ["", "## Quality after the same fit (`codec.encode_ladder`, decoded file)", "",
                  "| clip | frames | steps | q | seed | loop | PSNR dB | bpp | encode s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in res["quality"]:
            lines.append(f"| {r['clip']} | {r['frames']} | {r['steps']} | {r['quality']} | {r['seed']} "
                         f"| {r['loop']} | {r['psnr']:.3f} | {r['bpp']:.5f} | {r['encode_seconds']:.0f} |")
    lines += ["", "## Decode (no_grad forward, batch 8)", "", "| size | device | threads | frames/s | ms/frame |",
              "|---|---|---|---|---|"]
    for d in res["decode"]:
        lines.append(f"| {d['width']}x{d['height']} | {d['device']} | {d['threads']} "
                     f"| {d['frames_per_s']:.1f} | {d['ms_per_frame']:.2f} |")
    for p in res["profile"]:
        lines += ["", f"## Top ops: `{p['loop']}` at {p['width']}x{p['height']}, {p['threads']} threads, "
                  f"batch {p['batch']} ({p['ops_per_step']:.0f} profiler events per step)", "",
                  "| op | calls/step | self CPU ms/step | % |", "|---|---|---|---|"]
        for o in p["top_ops"][:8]:
            lines.append(f"| {o['op']} | {o['calls_per_step']:.0f} | {o['self_cpu_ms_per_step']:.1f} "
                         f"| {o['self_cpu_pct']:.1f} |")
    return "\n".join(lines) + "\n"


def write_json_and_markdown(out: Path, res: dict, md: str) -> None:
    """A speed run's JSON at ``out`` and its markdown table next to it (``.md``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    out.with_suffix(".md").write_text(md)


def main(argv: list[str] | None = None) -> dict:
    from codec.devices import pick_device

    ap = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--scale", type=float, default=1.0, help="time per measurement multiplier")
    ap.add_argument("--sizes", default=None, help="WxH list (default: QCIF, CIF, 832x480; on cuda QCIF, 1080p)")
    ap.add_argument("--threads", default="1,2", help="CPU threads (one run per value)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, 3 for slow steps)")
    ap.add_argument("--decode-sizes", default=None, help="WxH list for decode fps ('' for none)")
    ap.add_argument("--profile-size", default="176x144,352x288", help="sizes to profile ('' for none)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--quality-clip", default=None, help="also encode this clip with both loops")
    ap.add_argument("--quality-frames", type=int, default=16)
    ap.add_argument("--quality-steps", type=int, default=300)
    ap.add_argument("--quality-seeds", default="0")
    ap.add_argument("--quality-q", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time the new loop with the compiled loss")
    ap.add_argument("--append", action="store_true", help="add to the results already in --out")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    device = pick_device(a.device)
    threads = [int(t) for t in a.threads.split(",") if t] if device.type == "cpu" else [torch.get_num_threads()]
    sizes = parse_sizes(a.sizes if a.sizes is not None else DEFAULT_SIZES[device.type])
    out = Path(a.out or RESULTS / ("speed_v2.json" if device.type == "cpu" else "speed_v2_cuda.json"))
    res: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(),
                 "machine": machine(device), "device": device.type, "scale": a.scale,
                 "compare": [], "profile": [], "decode": [], "quality": []}
    if a.append and out.exists():  # one JSON from several shorter runs (the first run's header)
        prev = json.loads(out.read_text())
        res = {**prev, **{k: prev.get(k, []) for k in ("compare", "profile", "decode", "quality")}}
        res["commits"] = sorted(set(prev.get("commits", [prev["commit"]]) + [_commit()]))
    t_start = time.perf_counter()
    for w, h in sizes:
        for th in threads:
            c = compare(w, h, th, a.batch, a.scale, device, a.rounds,
                        ("old", "new", "compiled") if a.compile else ("old", "new"))
            res["compare"].append(c)
            print(f"{w}x{h} {device.type} t{th}: " + ", ".join(
                f"{k} {v['steps_per_s']:.2f} steps/s x{v['speedup']:.2f} "
                f"({v['speedup_range'][0]:.2f}-{v['speedup_range'][1]:.2f}) cpu x{v['cpu_speedup']:.2f}"
                for k, v in c["loops"].items()), flush=True)
    decode_sizes = a.decode_sizes if a.decode_sizes is not None else DEFAULT_DECODE[device.type]
    for w, h in parse_sizes(decode_sizes):
        for th in threads:
            d = decode_fps(w, h, th, 8, a.scale, device)
            res["decode"].append(d)
            print(f"decode {w}x{h} {device.type} t{th}: {d['frames_per_s']:.1f} frames/s", flush=True)
    if not a.no_profile:
        for w, h in parse_sizes(a.profile_size):
            for kind in ("old", "new"):
                p = profile_ops(w, h, max(threads), a.batch, a.scale, kind, device)
                res["profile"].append(p)
                print(f"profile {kind} {w}x{h}: {p['ops_per_step']:.0f} events/step; " + ", ".join(
                    f"{o['op']} {o['self_cpu_pct']:.0f}%" for o in p["top_ops"][:4]), flush=True)
    if a.quality_clip:
        torch.set_num_threads(max(threads))
        res["quality"] = quality(a.quality_clip, a.quality_frames, a.quality_steps, a.quality_q,
                                 [int(s) for s in a.quality_seeds.split(",") if s], a.device)
    res["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    res["seconds"] = res.get("seconds", 0.0) * a.append + time.perf_counter() - t_start
    write_json_and_markdown(out, res, markdown(res))
    print(f"wrote {out} and {out.with_suffix('.md')} in {res['seconds']:.0f} s")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
