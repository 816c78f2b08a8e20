"""Encode-effort presets: their cost and quality per clip, and the step cost they are built on.

    python -m benchmarks.presets run [--clips a,b] [--presets ultrafast,medium] [--quality 3]
                                     [--scale 1.0] [--results DIR] [--quick]
    python -m benchmarks.presets table [--results DIR] [--out FILE.md]
    python -m benchmarks.presets calibrate [--out FILE.json] [--seconds 3]

``run`` encodes each clip of protocol rd-v2 (``benchmarks/protocol.py``: the first 64 frames,
native size) once per preset at ``-q 3`` through ``codec.encode_ladder`` and writes one JSON
per (clip, preset) under ``--results`` (``<clip>/<preset>.json``); a record whose clip, preset,
quality, scale and nervc version match is kept on the next run, so an interrupted run resumes.
Seconds are the encoder's wall time including the verification decode of the file it wrote
(what ``codec.presets`` budgets; one torch thread unless ``--threads``), PSNR is RGB of that
decode, bits are the file's bytes.
``--scale`` multiplies every preset's steps (smoke runs; records say so). ``--quick`` runs the
tiny clips of the quick protocol instead of bench/.

``table`` writes a markdown table: per preset, s/MP, PSNR and bpp per clip and their means.

``calibrate`` times single steps of ``codec.finetune.run_fit`` (the encoder's fit, v2) at
QCIF, CIF and 832x480, batch 2 and 8, on 1 and 2 threads (per cell: the minimum wall time and
the minimum process CPU time of several steps), and the non-fit part of an encode (entropy
coding, writing, verification decode) per megapixel, then fits ``fixed + ns_per_pixel * batch
* padded_frame_pixels`` per thread count (least squares on relative errors, over the cells of
at most ``codec.presets.MAX_STEP_PIXELS`` per step). On a loaded machine, trust the 1-thread
CPU times: a niced process's wall time measures its share of the machine, and a 2-thread
process's CPU time includes OpenMP's spin-waiting for a descheduled thread.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.protocol import DATA_ROOT, REPO, Clip, quick_clips, v1_clips
from nervcore.atomic import write_bytes_atomic

DEFAULT_RESULTS = REPO / "benchmarks" / "work" / "presets"
DEFAULT_CALIBRATION = REPO / "benchmarks" / "results" / "presets_calibration.json"
QUALITY = 3
RECORD_FORMAT = 1
CAL_SIZES = ((176, 144), (352, 288), (832, 480))
CAL_BATCHES = (2, 8)
CAL_GOP = 16  # frames the timed batches are drawn from


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _machine() -> dict[str, Any]:
    import torch
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------- calibrate

def time_steps(width: int, height: int, batch: int, threads: int, seconds: float,
               min_steps: int = 3, max_steps: int = 40) -> dict[str, Any]:
    """Per-step wall and CPU seconds of ``run_fit`` (default init, batch drawn from 16 frames)."""
    import torch

    from codec.finetune import FitSettings, run_fit, start_fit
    from codec.inits import resolve_init
    from metanerv.model import build_model, grid_size_for, init_state_for

    torch.set_num_threads(threads)
    init = resolve_init("default")
    cfg = init.config
    gh, gw = grid_size_for(height, width, cfg)
    hp, wp = gh * cfg.total_stride, gw * cfg.total_stride
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(CAL_GOP, 3, hp, wp, generator=gen)
    model = build_model(cfg, (gh, gw), init.state, seed=0)
    base = init_state_for(init.state, (gh, gw))
    s = FitSettings(steps=10_000, lr=2e-2, batch=batch)
    state = start_fit(model, base, s)
    pixels = CAL_GOP * width * height
    run_fit(model, frames, base, state, s, 1, pixels, progress=False)  # warm-up (allocations)
    walls, cpus = [], []
    end = time.perf_counter() + seconds
    while len(walls) < min_steps or (time.perf_counter() < end and len(walls) < max_steps):
        t0, c0 = time.perf_counter(), time.process_time()
        run_fit(model, frames, base, state, s, state.step + 1, pixels, progress=False)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"width": width, "height": height, "padded_pixels": hp * wp, "batch": batch,
            "threads": threads, "steps": len(walls), "wall_min": min(walls),
            "wall_median": statistics.median(walls), "cpu_min": min(cpus),
            "cpu_median": statistics.median(cpus), "load_1min": os.getloadavg()[0]}


def fit_cost_model(rows: list[dict[str, Any]], key: str = "wall_min") -> tuple[float, float]:
    """``seconds = fixed + ns * 1e-9 * batch * padded_pixels`` by least squares on relative
    errors (a QCIF step weighs as much as an 832x480 one): (fixed s, ns)."""
    x = np.array([r["batch"] * r["padded_pixels"] for r in rows], np.float64)
    y = np.array([r[key] for r in rows], np.float64)
    a = np.stack([np.ones_like(x), x], 1) / y[:, None]
    (fixed, slope), *_ = np.linalg.lstsq(a, np.ones_like(y), rcond=None)
    return float(fixed), float(slope * 1e9)


def time_overhead(threads: int = 1) -> dict[str, Any]:
    """Seconds per MP of an encode with 0 fit steps: coding, writing, verification decode
    (wall and process CPU)."""
    import tempfile

    import torch

    import codec
    from nervcore.video_io import read_video
    torch.set_num_threads(threads)
    clip = DATA_ROOT / "fixtures" / "desk_320x240_36f.mp4"
    video = read_video(clip)
    mp = video.width * video.height * video.num_frames / 1e6
    with tempfile.TemporaryDirectory(prefix="nervc-cal-") as d:
        t0, c0 = time.perf_counter(), time.process_time()
        codec.encode(video, Path(d) / "a.nerv", steps=0, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"clip": clip.name, "megapixels": mp, "seconds": wall, "seconds_per_mp": wall / mp,
            "cpu_seconds": cpu, "cpu_seconds_per_mp": cpu / mp, "threads": threads,
            "load_1min": os.getloadavg()[0]}


def calibrate(out: Path, seconds: float, threads: list[int]) -> dict[str, Any]:
    rows = []
    for t in threads:
        for w, h in CAL_SIZES:
            for b in CAL_BATCHES:
                r = time_steps(w, h, b, t, seconds)
                print(f"{w}x{h} batch {b} threads {t}: {r['wall_min']:.3f} s/step min wall "
                      f"({r['wall_median']:.3f} median, {r['cpu_min']:.3f} CPU) over {r['steps']}, "
                      f"load {r['load_1min']:.2f}", flush=True)
                rows.append(r)
    from codec.presets import MAX_STEP_PIXELS
    fits = {}
    for t in threads:  # the cells the presets use: at most MAX_STEP_PIXELS per step
        mine = [r for r in rows if r["threads"] == t and r["batch"] * r["padded_pixels"] <= MAX_STEP_PIXELS]
        fixed, ns = fit_cost_model(mine)
        cpu_fixed, cpu_ns = fit_cost_model(mine, "cpu_min")
        fits[str(t)] = {"fixed_s": fixed, "ns_per_pixel": ns, "cpu_fixed_s": cpu_fixed,
                        "cpu_ns_per_pixel": cpu_ns,
                        "ns_per_pixel_each": [r["wall_min"] / (r["batch"] * r["padded_pixels"]) * 1e9
                                              for r in mine]}
        print(f"{t} thread(s): fixed {fixed * 1e3:.1f} ms + {ns:.0f} ns per (batch x pixel) wall; "
              f"process CPU {cpu_fixed * 1e3:.1f} ms + {cpu_ns:.0f} ns")
    over = time_overhead(min(threads))
    print(f"non-fit part of an encode, {over['threads']} thread(s): {over['seconds_per_mp']:.2f} s/MP wall, "
          f"{over['cpu_seconds_per_mp']:.2f} s/MP CPU ({over['clip']})")
    doc = {"date": _now(), "machine": _machine(), "steps": rows, "fits": fits, "overhead": over}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, (json.dumps(doc, indent=1) + "\n").encode())
    return doc


# ---------------------------------------------------------------- run

def _version() -> str:
    import codec
    from benchmarks.codecs import Nervc
    return Nervc.version("default") + f" ({getattr(codec, '__file__', '?')})"


def _record_path(results: Path, clip: str, preset: str) -> Path:
    return results / clip / f"{preset}.json"


def run_one(clip: Clip, preset: str, quality: int, scale: float, version: str) -> dict[str, Any]:
    """Encode one clip with one preset; the record of the file written and its decode."""
    import tempfile

    import codec
    from codec import presets
    from codec.ladder import DEFAULT_GOP

    video = clip.load()
    gop = min(DEFAULT_GOP, video.num_frames)
    sched = presets.schedule(preset, video.width, video.height, gop)
    steps = None if scale == 1.0 else max(1, round(sched.steps * scale))
    with tempfile.TemporaryDirectory(prefix="nervc-presets-") as d:
        t0 = time.perf_counter()
        r = codec.encode(video, Path(d) / "a.nerv", quality=quality, preset=preset, steps=steps,
                         progress=False)
        wall = time.perf_counter() - t0
    mp = video.width * video.height * video.num_frames / 1e6
    return {"format": RECORD_FORMAT, "clip": clip.name, "preset": preset, "quality": quality,
            "scale": scale, "version": version, "width": video.width, "height": video.height,
            "num_frames": video.num_frames, "megapixels": mp, "steps": r.steps, "batch": sched.batch,
            "lr": sched.lr, "num_bytes": r.num_bytes, "bpp": r.bpp, "psnr_rgb": r.psnr,
            "seconds": r.total_seconds, "wall_seconds": wall, "seconds_per_mp": r.total_seconds / mp,
            "predicted_seconds_per_mp": sched.predicted_seconds_per_mp if scale == 1.0 else None,
            "load_1min": os.getloadavg()[0], "date": _now(), "machine": _machine()}


def run(clips: list[Clip], names: list[str], results: Path, quality: int, scale: float,
        force: bool = False) -> list[dict[str, Any]]:
    version = _version()
    out = []
    for clip in clips:
        for preset in names:
            path = _record_path(results, clip.name, preset)
            if path.is_file() and not force:
                try:
                    rec = json.loads(path.read_text())
                except (OSError, ValueError):
                    rec = None
                if rec and (rec.get("format"), rec.get("quality"), rec.get("scale"), rec.get("version")) \
                        == (RECORD_FORMAT, quality, scale, version):
                    out.append(rec)
                    continue
            rec = run_one(clip, preset, quality, scale, version)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, (json.dumps(rec, indent=1) + "\n").encode())
            print(f"{clip.name} {preset}: {rec['seconds_per_mp']:.2f} s/MP, {rec['psnr_rgb']:.2f} dB, "
                  f"{rec['bpp']:.4f} bpp ({rec['steps']} steps, batch {rec['batch']})", flush=True)
            out.append(rec)
    return out


# ---------------------------------------------------------------- table

def load_records(results: Path) -> list[dict[str, Any]]:
    recs = []
    for p in sorted(Path(results).glob("*/*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(r, dict) and r.get("format") == RECORD_FORMAT and "preset" in r:
            recs.append(r)
    return recs


def markdown_table(recs: list[dict[str, Any]]) -> str:
    """Rows: presets, fastest first; columns: per clip ``s/MP, dB, bpp``, then the means."""
    from codec.presets import PRESET_NAMES

    clips = sorted({r["clip"] for r in recs})
    by = {(r["clip"], r["preset"]): r for r in recs}
    presets = [p for p in PRESET_NAMES if any((c, p) in by for c in clips)]
    scales = sorted({r["scale"] for r in recs})
    qual = sorted({r["quality"] for r in recs})
    lines = [f"nervc presets at -q {'/'.join(map(str, qual))}: s/MP (encode incl. verification "
             "decode) / RGB PSNR dB / bpp" + (f"; steps scaled by {scales}" if scales != [1.0] else ""), ""]
    lines.append("| preset | " + " | ".join(clips) + " | mean s/MP | mean dB | mean bpp |")
    lines.append("|---" * (len(clips) + 4) + "|")
    for p in presets:
        cells, got = [], []
        for c in clips:
            r = by.get((c, p))
            if r is None:
                cells.append("-")
                continue
            got.append(r)
            cells.append(f"{r['seconds_per_mp']:.1f} / {r['psnr_rgb']:.2f} / {r['bpp']:.4f}")
        full = len(got) == len(clips)  # means only over complete rows
        mean = (lambda k: f"{statistics.fmean(r[k] for r in got):.{1 if k == 'seconds_per_mp' else 2 if k == 'psnr_rgb' else 4}f}"
                if full else "-")
        lines.append(f"| {p} | " + " | ".join(cells)
                     + f" | {mean('seconds_per_mp')} | {mean('psnr_rgb')} | {mean('bpp')} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.presets",
                                description="Cost and quality of nervc's encode-effort presets.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="encode every clip with every preset (resumable)")
    r.add_argument("--results", "-r", type=Path, default=DEFAULT_RESULTS)
    r.add_argument("--data", type=Path, default=DATA_ROOT, help="shared data root holding bench/")
    r.add_argument("--clips", help="comma-separated clip names (default: all of rd-v2)")
    r.add_argument("--presets", help="comma-separated presets (default: all)")
    r.add_argument("--quality", "-q", type=int, default=QUALITY)
    r.add_argument("--scale", type=float, default=1.0, help="multiply every preset's steps (smoke runs)")
    r.add_argument("--quick", action="store_true", help="the quick protocol's two tiny clips")
    r.add_argument("--force", action="store_true")
    r.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: what the presets' cost model predicts; two "
                        "threads were 2-6x slower per step with one other busy process)")
    t = sub.add_parser("table", help="markdown table of the records")
    t.add_argument("--results", "-r", type=Path, default=DEFAULT_RESULTS)
    t.add_argument("--out", type=Path, help="write the table here (default: print it)")
    c = sub.add_parser("calibrate", help="time run_fit steps; fit the presets' cost model")
    c.add_argument("--out", type=Path, default=DEFAULT_CALIBRATION)
    c.add_argument("--seconds", type=float, default=3.0, help="time per (size, batch, threads) cell")
    c.add_argument("--threads", default="1,2")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.cmd == "calibrate":
        calibrate(a.out, a.seconds, [int(t) for t in _csv(a.threads) or ["2"]])
        return 0
    if a.cmd == "table":
        text = markdown_table(load_records(a.results))
        if a.out:
            write_bytes_atomic(a.out, text.encode())
        else:
            print(text, end="")
        return 0
    import torch

    from codec.presets import PRESET_NAMES, check_preset
    torch.set_num_threads(a.threads)
    names = _csv(a.presets) or list(PRESET_NAMES)
    for n in names:
        check_preset(n)
    if not (a.scale > 0):
        print("--scale must be > 0", file=sys.stderr)
        return 2
    clips = quick_clips() if a.quick else v1_clips(a.data)
    wanted = _csv(a.clips)
    if wanted:
        unknown = set(wanted) - {c.name for c in clips}
        if unknown:
            print(f"unknown clips: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        clips = [c for c in clips if c.name in wanted]
    run(clips, names, a.results, a.quality, a.scale, a.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
