"""Rate-distortion benchmark runner: ``nervc bench [run] ...``, ``bench plot``, ``bench table``.

One JSON per (clip, codec, rate point) is written next to its bitstream under the results
directory (``<results>/<clip>/<codec>/<point>.json`` + ``<point>.<ext>``). A finished point is
reused on the next run as long as its protocol, codec version and options are unchanged and
its bitstream still has the recorded size, so an interrupted run resumes where it stopped;
``--force`` recomputes. Bits are always the size of the file on disk.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks import codecs as codecs_mod
from benchmarks.colour import rgb_to_yuv420
from benchmarks.metrics import bits_per_pixel, ms_ssim, psnr, psnr_yuv
from benchmarks.protocol import (DATA_ROOT, PROTOCOL_VERSION, QUICK_PROTOCOL_VERSION, REPO, Clip,
                                 quick_clips, v1_clips)
from nervcore.atomic import write_bytes_atomic
from nervcore.errors import NervcError

DEFAULT_RESULTS = REPO / "benchmarks" / "work"
QUICK_NERVC_STEPS = 3
RECORD_FORMAT = 1


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nervc bench", description=(
        "Rate-distortion benchmark of nervc against x264, x265 and SVT-AV1 (protocol "
        f"{PROTOCOL_VERSION}). Subcommands: run (default), plot, table."))
    p.add_argument("--results", "-r", type=Path, default=None,
                   help=f"results directory (default {DEFAULT_RESULTS}/<protocol>)")
    p.add_argument("--data", type=Path, default=DATA_ROOT, help="shared data root holding bench/")
    p.add_argument("--clips", help="comma-separated clip names to run (default: all)")
    p.add_argument("--codecs", help=f"comma-separated codecs (default: {','.join(codecs_mod.DEFAULT_CODECS)}; "
                   f"also {','.join(c for c in codecs_mod.ALL_CODECS if c not in codecs_mod.DEFAULT_CODECS)})")
    p.add_argument("--points", help="comma-separated rate points: ladder labels (crf27, q3) or "
                                    "0-based ladder indices (0,2); default: every point")
    p.add_argument("--force", action="store_true", help="recompute points that already have results")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 tiny clips, 2 points per codec, few nervc steps")
    p.add_argument("--steps", type=int, default=None,
                   help="nervc training steps for every point (default: the quality ladder's; "
                        f"{QUICK_NERVC_STEPS} with --quick)")
    p.add_argument("--preset", default=codecs_mod.BENCH_PRESET, metavar="NAME",
                   help=f"nervc's encode effort when no --steps is given (default {codecs_mod.BENCH_PRESET}; "
                        "the records carry it, so runs at different presets never mix)")
    p.add_argument("--init", metavar="PATH", default=None,
                   help="init file the nervc codecs that use the shipped init encode from instead "
                        "(to compare a candidate init; records name its id)")
    p.add_argument("--threads", type=int, default=1,
                   help="encoder threads for x264/x265/SVT-AV1 (default 1: reproducible bitstreams)")
    p.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (the slowest metric)")
    p.add_argument("--dry-run", action="store_true", help="list what would run and what is reused")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def select_points(name: str, spec: list[str] | None, quick: bool) -> list[str]:
    """The rate points of codec ``name`` to run, from --points or the quick/full default."""
    full = codecs_mod.ladder(name)
    if spec:
        chosen = []
        for tok in spec:
            if tok.isdigit():
                if int(tok) < len(full):
                    chosen.append(full[int(tok)])
            elif tok in full:
                chosen.append(tok)
        return list(dict.fromkeys(chosen))
    if quick:  # the ladder's two middle-ish points keep rates sane on 4-frame crops
        return [full[len(full) // 3], full[(2 * len(full)) // 3]] if len(full) > 2 else full
    return full


def record_paths(results: Path, clip: str, codec: str, point: str, ext: str) -> tuple[Path, Path]:
    d = results / clip / codec
    return d / f"{point}.json", d / f"{point}{ext}"


def load_reusable(json_path: Path, expect: dict[str, Any]) -> dict[str, Any] | None:
    """The stored record if it is complete and was made under the same conditions."""
    try:
        rec = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return None
    for k, v in expect.items():
        if rec.get(k) != v:
            return None
    bs = json_path.parent / rec.get("bitstream", "")
    if not bs.is_file() or bs.stat().st_size != rec.get("num_bytes"):
        return None
    return rec


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data, fsync=False)


def _git_revision() -> str | None:
    """HEAD of the checkout the run used (+ "-dirty"), for provenance only (not a reuse key)."""
    import subprocess
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev + ("-dirty" if dirty else "")) if rev else None


def _environment(threads: int) -> dict[str, Any]:
    import torch
    return {"python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "encoder_threads": threads, "git": _GIT[0]}


_GIT: list[str | None] = [None]


def run_point(clip: Clip, video: Any, ref_yuv: tuple[np.ndarray, ...], codec: Any, version: str,
              protocol: str, json_path: Path, bs_path: Path, want_ms_ssim: bool,
              threads: int) -> dict[str, Any]:
    """Encode, write, re-read, decode and measure one point; returns the record it wrote."""
    frames = video.frames
    n, h, w, _ = frames.shape
    t0 = time.perf_counter()
    data = codec.encode(frames, video.fps)
    encode_seconds = time.perf_counter() - t0
    if getattr(codec, "last_encode_seconds", None) is not None:
        encode_seconds = codec.last_encode_seconds  # nervc's own timer (excludes its self-check)
    _atomic_write(bs_path, data)
    written = bs_path.read_bytes()  # measure and decode exactly what is on disk
    num_bytes = bs_path.stat().st_size
    t0 = time.perf_counter()
    if codec.traditional:
        dec_yuv = codec.decode_yuv(written)
        decode_seconds = time.perf_counter() - t0
        from benchmarks.colour import yuv420_to_rgb
        decoded = yuv420_to_rgb(*dec_yuv)
    else:
        decoded = codec.decode(written)
        decode_seconds = codec.last_decode_seconds or (time.perf_counter() - t0)
        dec_yuv = rgb_to_yuv420(decoded)
    if decoded.shape != frames.shape:
        raise RuntimeError(f"{codec.name} {codec.point} on {clip.name}: decoded {decoded.shape}, "
                           f"expected {frames.shape}")
    rec: dict[str, Any] = {
        "record_format": RECORD_FORMAT,
        "protocol": protocol,
        "clip": clip.name,
        "clip_spec": clip.describe(),
        "codec": codec.name,
        "traditional": bool(codec.traditional),
        "version": version,
        "point": codec.point,
        "options": codec.options,
        "bitstream": bs_path.name,
        "num_bytes": num_bytes,
        "bits": 8 * num_bytes,
        "stripped_bytes": int(getattr(codec, "stripped_bytes", 0)),
        "width": w, "height": h, "num_frames": n, "fps": str(video.fps),
        "bpp": bits_per_pixel(num_bytes, w, h, n),
        "psnr_rgb": psnr(frames, decoded),
        **psnr_yuv(ref_yuv, dec_yuv),
        "ms_ssim": ms_ssim(frames, decoded) if want_ms_ssim else None,
        "encode_seconds": encode_seconds,
        "encode_seconds_per_frame": encode_seconds / n,
        "decode_seconds": decode_seconds,
        "decode_fps": n / max(decode_seconds, 1e-9),
        "extra": dict(getattr(codec, "last_info", {}) or {}),
        "environment": _environment(threads),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _atomic_write(json_path, (json.dumps(rec, indent=1, sort_keys=True) + "\n").encode())
    return rec


def run(args: argparse.Namespace) -> int:
    codecs_mod.quiet_ffmpeg()  # before any read_video: see quiet_ffmpeg for the deadlock
    protocol = QUICK_PROTOCOL_VERSION if args.quick else PROTOCOL_VERSION
    results = args.results or DEFAULT_RESULTS / protocol
    try:
        clips = quick_clips() if args.quick else v1_clips(args.data)
    except FileNotFoundError as e:
        print(f"nervc bench: {e}", file=sys.stderr)
        return 2
    want_clips = _csv(args.clips)
    if want_clips:
        unknown = set(want_clips) - {c.name for c in clips}
        if unknown:
            print(f"nervc bench: unknown clip(s) {', '.join(sorted(unknown))}; "
                  f"known: {', '.join(c.name for c in clips)}", file=sys.stderr)
            return 2
        clips = [c for c in clips if c.name in want_clips]
    names = _csv(args.codecs) or list(codecs_mod.DEFAULT_CODECS)
    unknown = [c for c in names if c not in codecs_mod.ALL_CODECS]
    if unknown:
        print(f"nervc bench: unknown codec(s) {', '.join(unknown)}; known: "
              f"{', '.join(codecs_mod.ALL_CODECS)}", file=sys.stderr)
        return 2
    if not codecs_mod.nervc_available():
        dropped = [c for c in names if c in codecs_mod.NERVC_INITS]
        if dropped and args.codecs:
            print("nervc bench: the nervc codec API (codec.encode/decode) is not available",
                  file=sys.stderr)
            return 2
        names = [c for c in names if c not in codecs_mod.NERVC_INITS]
    if args.preset != codecs_mod.BENCH_PRESET:
        from codec.presets import check_preset
        try:
            check_preset(args.preset)
        except NervcError as e:
            print(f"nervc bench: --preset: {e}", file=sys.stderr)
            return 2
    steps = args.steps if args.steps is not None else (QUICK_NERVC_STEPS if args.quick else None)
    points = {n: select_points(n, _csv(args.points), args.quick) for n in names}
    try:  # reads --init's file (once per nervc codec): a missing or broken one is one clear line
        versions = {n: codecs_mod.version(n, args.init) for n in names}
    except NervcError as e:
        print(f"nervc bench: --init: {e}", file=sys.stderr)
        return 2

    jobs = []
    for clip in clips:
        for name in names:
            for point in points[name]:
                codec = codecs_mod.make(name, point, threads=args.threads, steps=steps, init=args.init,
                                        preset=args.preset)
                jpath, bpath = record_paths(results, clip.name, name, point, codec.ext)
                expect = {"protocol": protocol, "clip_spec": clip.describe(), "codec": name,
                          "point": point, "version": versions[name],
                          "options": json.loads(json.dumps(codec.options)),
                          "record_format": RECORD_FORMAT}
                reuse = None if args.force else load_reusable(jpath, expect)
                jobs.append((clip, codec, jpath, bpath, reuse))
    todo = sum(1 for j in jobs if j[4] is None)
    print(f"protocol {protocol}: {len(clips)} clips x {len(names)} codecs -> {len(jobs)} points, "
          f"{len(jobs) - todo} reused, {todo} to run; results in {results}", file=sys.stderr)
    if args.dry_run:
        for clip, codec, jpath, _, reuse in jobs:
            print(f"{'reuse' if reuse else 'run  '} {clip.name} {codec.name} {codec.point}")
        return 0

    _GIT[0] = _git_revision()
    loaded: dict[str, tuple[Any, tuple[np.ndarray, ...]]] = {}
    failures = 0
    failed_groups: set[tuple[str, str]] = set()
    bar = tqdm(total=len(jobs), unit="pt", disable=args.no_progress, dynamic_ncols=True)
    try:
        for clip, codec, jpath, bpath, reuse in jobs:
            bar.set_postfix_str(f"{clip.name} {codec.name} {codec.point}")
            if reuse is None:
                if clip.name not in loaded:
                    loaded.clear()  # jobs are clip-major: keep one clip in memory
                    codecs_mod.quiet_ffmpeg()
                    video = clip.load()
                    loaded[clip.name] = (video, rgb_to_yuv420(video.frames))
                video, ref_yuv = loaded[clip.name]
                key = (clip.name, codec.name)
                if key in failed_groups:
                    failures += 1
                    tqdm.write(f"FAILED {clip.name} {codec.name} {codec.point}: skipped, the "
                               "shared nervc fit above failed", file=sys.stderr)
                    bar.update(1)
                    continue
                try:
                    if not codec.traditional and codec._prepared is None:
                        # one fit for every pending level of this clip and init
                        group = [j[1] for j in jobs if j[0] is clip and j[4] is None
                                 and j[1].name == codec.name]
                        try:
                            codecs_mod.Nervc.encode_group(group, video.frames, video.fps)
                        except Exception:
                            failed_groups.add(key)  # do not refit for each remaining level
                            raise
                    run_point(clip, video, ref_yuv, codec, versions[codec.name], protocol, jpath,
                              bpath, not args.no_ms_ssim, args.threads)
                except Exception as e:  # one broken point must not lose a long run
                    failures += 1
                    tqdm.write(f"FAILED {clip.name} {codec.name} {codec.point}: "
                               f"{type(e).__name__}: {e}", file=sys.stderr)
            bar.update(1)
    finally:
        bar.close()
    if failures:
        print(f"nervc bench: {failures} point(s) failed; rerun to retry them", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``nervc bench``; ``argv`` excludes the word "bench"."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "plot":
        from benchmarks import plot
        return plot.main(argv[1:])
    if argv and argv[0] == "table":
        from benchmarks import table
        return table.main(argv[1:])
    if argv and argv[0] == "run":
        argv = argv[1:]
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
