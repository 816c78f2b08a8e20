"""Data scaling of meta-training: the held-back lead of an init against the number of
training clips and of tasks seen ("MetaNeRV at scale", item 2).

Each run meta-trains the model from random weights with ``metanerv.train`` on the first N clips
of the fixed nested order of the meta-training split (``--split meta --clips N``: the held-back
clips of ``metanerv.splits`` are never opened), all runs for the same number of tasks, writing
the init after each of ``--snapshots`` tasks (one ``--stop-after`` session per snapshot,
resumed from the checkpoint). Every snapshot is then adapted to the held-back ``--eval-clips``
exactly as ``benchmarks/adaptation.py`` does (the encoder's own fit: by default the coded half
size, first 16 frames, batch 2, lr 1e-2, ``--tune balanced``, lambda 0), beside a random init
and the shipped default (which never saw the held-back clips either). The lead is the PSNR an
init reaches after N steps minus the random init's, per clip; mean and median over clips.

One process, one thread: the runs go one after the other. Everything resumes: a snapshot that
exists is not trained again, an interrupted session continues from its checkpoint, and a fit
whose record exists is not run again. Writes ``OUT/curve.json``, ``OUT/table.md`` and
``OUT/curve.png``; the work (checkpoints, snapshots, fit records) goes under ``--work``.

    python -m benchmarks.meta_data_curve --runs all:1,8:1,all:2,32:1 --snapshots 100,200
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import adaptation
from metanerv import splits
from metanerv import train as meta_train
from metanerv.checkpoint import load_checkpoint
from metanerv.init_file import DEFAULT_INIT, load_init
from metanerv.tasks import list_videos
from nervcore.atomic import write_bytes_atomic

HERE = Path(__file__).resolve().parent
TRAIN_DIR = adaptation.DATA / "train"
OUT_DIR = HERE / "results" / "meta-data"
WORK_DIR = HERE / "work" / "meta-data"
# Reptile as benchmarks/results/meta-curve ran it (8 inner Adam steps of 8 frames, lr 5e-3, outer
# Adam 1e-3, 2 tasks per outer step, temporal ramp 2 -> 32 frames), tasks at the coded sizes
TRAIN_ARGS = ("--channels", "32,24,16,8", "--algo", "reptile", "--inner-steps", "8", "--inner-lr", "5e-3",
              "--outer-lr", "1e-3", "--tasks-per-step", "2",
              "--sides", "96,112,128,144,160,176,192,208,224,240,256")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.meta_data_curve", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(TRAIN_DIR), help="the train/ folder")
    p.add_argument("--runs", default="all:1,8:1,32:1,16:1,all:2", metavar="N:SEED,...",
                   help="runs in the order they are made: clips (a number or 'all') and seed")
    p.add_argument("--snapshots", default="100,200,300", help="tasks after which the init is written")
    p.add_argument("--eval-snapshots", default=None,
                   help="snapshots that are measured (default: all of them)")
    p.add_argument("--tasks-per-step", type=int, default=2)
    p.add_argument("--train-args", default=" ".join(TRAIN_ARGS),
                   help="metanerv.train options of every run (model, algorithm, task sizes)")
    p.add_argument("--frame-cache", default="/tmp/nervc_frames")
    p.add_argument("--eval-clips", default=",".join(splits.EVAL_CLIPS), help="held-back clips measured")
    p.add_argument("--steps", default="10,25,50,100", help="fine-tuning steps measured")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--scale", type=int, default=2, help="box reduction of the clips (2: coded half size)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--lam", type=float, default=0.0)
    p.add_argument("--tune", default="balanced")
    p.add_argument("--reference", default=str(DEFAULT_INIT),
                   help="an init measured beside the runs for scale ('' for none)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default=str(WORK_DIR))
    p.add_argument("--out", default=str(OUT_DIR))
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--quiet", action="store_true")
    return p


def parse_runs(spec: str, n_meta: int, snapshots: list[int]) -> list[tuple[int, int, list[int]]]:
    """``N:SEED`` or ``N:SEED:T1/T2/...`` (this run's own snapshots) items, comma-separated.

    A run's outer-step budget is its last snapshot: a run given more snapshots later continues
    from its checkpoint with the longer budget (its step-size decay and frame ramp are stretched
    from there on; the snapshots it has keep their own)."""
    runs = []
    for item in spec.split(","):
        n, seed, own = (item.strip().split(":") + ["", ""])[:3]
        snaps = sorted({int(t) for t in own.split("/")}) if own else snapshots
        runs.append((n_meta if n == "all" else int(n), int(seed or 1), snaps))
    return runs


def _log(opts, msg: str) -> None:
    if not opts.quiet:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def train_run(opts, n: int, seed: int, snapshots: list[int]) -> dict[int, Path]:
    """Meta-train one run up to its last snapshot; returns tasks -> snapshot init file."""
    run_dir = Path(opts.work) / f"c{n}-s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    out, ckpt = run_dir / "run.safetensors", run_dir / "run.ckpt"
    tps = opts.tasks_per_step
    total_steps = snapshots[-1] // tps
    files = {}
    for t in snapshots:
        snap = run_dir / f"t{t}.safetensors"
        files[t] = snap
        if snap.is_file():
            continue
        step = 0
        if ckpt.is_file():
            step = int(load_checkpoint(ckpt)[1]["step"])
        target = t // tps
        if step < target:
            argv = [opts.data, "--out", str(out), "--split", "meta", "--clips", str(n), "--seed", str(seed),
                    "--steps", str(total_steps), "--stop-after", str(target - step),
                    "--threads", str(opts.threads), "--ckpt", str(ckpt), "--ckpt-minutes", "3", "--quiet",
                    *opts.train_args.split()]
            if opts.frame_cache:
                argv += ["--frame-cache", opts.frame_cache]
            if step > 0:
                argv.append("--resume")
            _log(opts, f"train {n} clips seed {seed}: step {step} -> {target} ({t} tasks)")
            if meta_train.main(argv) != 0:
                raise SystemExit(f"meta-training {run_dir} failed")
        elif not out.is_file():
            raise SystemExit(f"{ckpt} is past {t} tasks but {snap} is missing: remove {run_dir} to redo it")
        shutil.copyfile(out, snap)
    return files


def evaluate(opts, inits: list[tuple[str, str]], tag: str) -> dict:
    """Adapt every init to the eval clips (benchmarks.adaptation's records are reused)."""
    work = Path(opts.work)
    argv = ["--native", "--data", opts.data, "--clips", opts.eval_clips, "--scale", str(opts.scale),
            "--frames", str(opts.frames), "--steps", opts.steps, "--batch", str(opts.batch),
            "--lr", str(opts.lr), "--lam", str(opts.lam), "--tune", opts.tune,
            "--results", str(work / "fits"), "--jobs", "1", "--threads", str(opts.threads),
            "--out-json", str(work / f"adapt-{tag}.json"), "--out-png", str(work / f"adapt-{tag}.png")]
    if opts.quiet:
        argv.append("--quiet")
    for name, path in inits:
        argv += ["--init", f"{name}={path}"]
    _log(opts, f"measure {', '.join(n for n, _ in inits)}")
    adaptation.main(argv)
    return json.loads((work / f"adapt-{tag}.json").read_text())


def leads(adapt: dict, init: str, steps: list[int]) -> dict:
    """Per step count: the init's lead over random per clip, and its mean and median."""
    out = {}
    for n in steps:
        per = {c: e["psnr"][init][str(n)] - e["psnr"]["random"][str(n)] for c, e in adapt["clips"].items()}
        vals = list(per.values())
        out[str(n)] = {"mean": float(np.mean(vals)), "median": float(np.median(vals)), "clips": per}
    return out


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:+.2f}"


def write_outputs(opts, result: dict) -> None:
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    result["rows"].sort(key=lambda r: (r["clips"], r["seed"], r["tasks"]))
    write_bytes_atomic(out / "curve.json", (json.dumps(result, indent=1) + "\n").encode(), fsync=False)
    steps = result["steps"]
    lines = [f"Lead over a random init on {len(result['eval_clips'])} held-back clips (dB, median / mean "
             f"over clips) after N fine-tuning steps; {result['protocol']}.", "",
             "| clips | seed | tasks | " + " | ".join(f"{n} steps" for n in steps) + " |",
             "|---|---|---|" + "---|" * len(steps)]
    for row in result["rows"]:
        cells = [f"{_fmt(row['lead'][str(n)]['median'])} / {_fmt(row['lead'][str(n)]['mean'])}" for n in steps]
        lines.append(f"| {row['clips']} | {row['seed']} | {row['tasks']} | " + " | ".join(cells) + " |")
    for name, lead in result.get("reference", {}).items():
        cells = [f"{_fmt(lead[str(n)]['median'])} / {_fmt(lead[str(n)]['mean'])}" for n in steps]
        lines.append(f"| {name} (reference) | | | " + " | ".join(cells) + " |")
    lines += ["", "Random init, PSNR (dB) per clip after " + " / ".join(map(str, steps)) + " steps:", ""]
    for clip, curve in result["random_psnr"].items():
        lines.append(f"- {clip}: " + " / ".join(f"{curve[str(n)]:.2f}" for n in steps))
    (out / "table.md").write_text("\n".join(lines) + "\n")
    plot(result, out / "curve.png")


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows, steps = result["rows"], result["steps"]
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    # the most tasks every run reached; seeds of one clip count: each a dot, their mean the line
    last = min(max(r["tasks"] for r in rows if (r["clips"], r["seed"]) == k)
               for k in {(r["clips"], r["seed"]) for r in rows})
    ax = axes[0]
    for n, colour in zip(steps, plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        at = [r for r in rows if r["tasks"] == last]
        xs = sorted({r["clips"] for r in at})
        ys = [float(np.mean([r["lead"][str(n)]["median"] for r in at if r["clips"] == c])) for c in xs]
        ax.plot(xs, ys, "-", color=colour, label=f"{n} steps")
        ax.plot([r["clips"] for r in at], [r["lead"][str(n)]["median"] for r in at], "o", color=colour)
    ax.set_xscale("log", base=2)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("meta-training clips")
    ax.set_ylabel("lead over random, median over held-back clips (dB)")
    ax.set_title(f"after {last} tasks")
    ax.legend(fontsize=8)
    ax = axes[1]
    runs = sorted({(r["clips"], r["seed"]) for r in rows})
    for (c, s), colour in zip(runs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
        for n, style in ((steps[0], "o-"), (steps[-1], "s--")):
            pts = sorted((r["tasks"], r["lead"][str(n)]["median"]) for r in rows
                         if r["clips"] == c and r["seed"] == s)
            ax.plot(*zip(*pts), style, color=colour, label=f"{c} clips s{s}, {n} steps")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("tasks seen")
    ax.set_title(f"vs tasks: {steps[0]} steps (solid), {steps[-1]} (dashed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    t0 = time.monotonic()
    videos = list_videos(opts.data)
    meta = splits.select(videos, "meta")
    eval_clips = [c.strip() for c in opts.eval_clips.split(",") if c.strip()]
    leaked = sorted(set(eval_clips) - set(splits.HELD_BACK))
    if leaked:
        raise SystemExit(f"--eval-clips {', '.join(leaked)}: not held back, an init may have seen them")
    snapshots = sorted({int(t) for t in opts.snapshots.split(",")})
    runs = parse_runs(opts.runs, len(meta), snapshots)
    if any(t % opts.tasks_per_step for _, _, snaps in runs for t in snaps):
        raise SystemExit("snapshots must be multiples of --tasks-per-step")
    opts.train_args = opts.train_args + f" --tasks-per-step {opts.tasks_per_step}"
    only = {int(t) for t in opts.eval_snapshots.split(",")} if opts.eval_snapshots else None
    steps = sorted({int(s) for s in opts.steps.split(",")})
    ref = [("reference", opts.reference)] if opts.reference else []
    result: dict = {
        "protocol": {"eval": "benchmarks.adaptation native (the encoder's fit)", "clips": eval_clips,
                     "frames": opts.frames, "scale": opts.scale, "batch": opts.batch, "lr": opts.lr,
                     "lam": opts.lam, "tune": opts.tune, "threads": opts.threads},
        "train_args": opts.train_args, "split": {"held_back": list(splits.HELD_BACK),
                                                 "meta": [p.name for p in meta]},
        "eval_clips": eval_clips, "steps": steps, "rows": [], "runs": {}, "random_psnr": {},
    }
    result["protocol"] = ", ".join(f"{k} {v}" for k, v in result["protocol"].items() if k != "clips")
    for n, seed, snaps in runs:
        files = train_run(opts, n, seed, snaps)
        measured = [t for t in snaps if only is None or t in only]
        result["runs"][f"{n}:{seed}"] = {"clips": load_init(files[snaps[-1]]).info["split"]["clips"],
                                         "snapshots": {t: {"seconds": load_init(f).info["seconds"],
                                                           "command": load_init(f).info["command"]}
                                                       for t, f in files.items()}}
        if opts.no_eval:
            continue
        inits = [("random", "random")] + ref + [(f"c{n}s{seed}t{t}", str(files[t])) for t in measured]
        adapt = evaluate(opts, inits, f"c{n}-s{seed}")
        result["random_psnr"] = {c: e["psnr"]["random"] for c, e in adapt["clips"].items()}
        if ref:
            result["reference"] = {f"shipped default ({load_init(opts.reference).short_id})":
                                   leads(adapt, "reference", steps)}
        result["rows"] = [r for r in result["rows"] if (r["clips"], r["seed"]) != (n, seed)]
        for t in measured:
            result["rows"].append({"clips": n, "seed": seed, "tasks": t,
                                   "init_id": load_init(files[t]).short_id,
                                   "lead": leads(adapt, f"c{n}s{seed}t{t}", steps)})
        result["seconds"] = round(time.monotonic() - t0, 1)
        write_outputs(opts, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
