"""``nervc`` command line: a thin layer over the Python API.

Every subcommand is a ``main``-style function taking ``argv`` so tests call it directly;
``main(argv)`` dispatches. User errors print one line (``nervc: error: ...``) and exit 1;
nothing partial is left behind because every writer is atomic.
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from nervcore.errors import NervcError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise NervcError(f"{self.prog}: {message}")


def _frames(spec):
    from nervcore.video_io import parse_frame_range
    return parse_frame_range(spec)


def _common_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--overwrite", action="store_true", help="overwrite an existing output")




def _check_device(device: str) -> None:
    """``codec.decoder.pick_device``, run before any work: an unknown name or ``cuda`` without
    CUDA is a user error, not a torch exception from deep inside training."""
    from codec.decoder import pick_device
    pick_device(device)


def _check_bounds(a: argparse.Namespace, bounds: dict[str, tuple[str, float, float]]) -> None:
    """``bounds``: {dest: (kind, low, high)}; kind "[]" or "(]" says whether ``low`` is
    allowed. Options left unset (None) are not checked; list values are checked item by item."""
    for dest, (kind, low, high) in bounds.items():
        value = getattr(a, dest)
        if value is None:
            continue
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if not (math.isfinite(v) and (v >= low if kind == "[]" else v > low) and v <= high):
                what = f"{'at least' if kind == '[]' else 'more than'} {low:g}"
                if high != math.inf:
                    what += f" and at most {high:g}"
                raise NervcError(f"--{dest.replace('_', '-')} {value!r}: must be {what}")


def _raising(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A plain argparse parser (bench, meta-train: they also run as ``python -m``) that raises
    NervcError, so a bad option is one ``nervc: error:`` line and exit 1 like everywhere else."""
    def error(message: str):
        raise NervcError(f"{parser.prog}: {message}")
    parser.error = error  # type: ignore[method-assign]
    return parser


def _wants_preset_help(argv: list[str]) -> bool:
    """``--preset help`` (or ``--preset=help``) anywhere: list the presets, encode nothing."""
    return any(x == "--preset=help" or (x == "--preset" and nxt == "help")
               for x, nxt in zip(argv, [*argv[1:], None]))


def _scale(text: str) -> int | str:
    """``--scale``: ``auto`` or an integer 1..``codec.presets.MAX_SCALE``."""
    from codec.presets import MAX_SCALE
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_SCALE:
        raise argparse.ArgumentTypeError(f"{text!r}: expected auto or an integer 1..{MAX_SCALE}")
    return value


def encode_main(argv: list[str]) -> int:
    from codec import presets
    from codec.encoder import encode
    from codec.finetune import DEFAULT_TUNE, DISTORTIONS
    from codec.ladder import DEFAULT_GOP, DEFAULT_QUALITY, LADDER, QUALITY_LEVELS, rung_weight
    from nervcore.video_io import parse_fps, parse_size

    if _wants_preset_help(argv):
        print(presets.table_text())
        return 0
    p = _Parser(prog="nervc encode", description="Encode a video into a .nerv bitstream.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=presets.table_text() + "\n\n--steps, --batch and --lr, when given, win over the preset's.")
    p.add_argument("input", help="video file, raw .yuv/.i420, .y4m or folder of PNG frames")
    p.add_argument("output", help="output .nerv file")
    p.add_argument("-q", "--quality", type=int, default=DEFAULT_QUALITY, choices=QUALITY_LEVELS,
                   help=f"quality ladder rung (default {DEFAULT_QUALITY})")
    p.add_argument("--preset", default=presets.DEFAULT_PRESET, metavar="NAME",
                   help=f"encode effort: {', '.join(presets.PRESET_NAMES)} (default "
                        f"{presets.DEFAULT_PRESET}; 'help' lists their schedules)")
    p.add_argument("--steps", type=int, help="fine-tuning steps per GOP (expert; overrides the preset's)")
    p.add_argument("--batch", type=int, help="frames per fitting step (expert; overrides the preset's)")
    p.add_argument("--bpp", type=float, help="target rate in bits per pixel (instead of -q's rate weight; "
                   "-q still picks the coded size: -q 7 for the larger one a high rate wants)")
    p.add_argument("--lam", type=float, help="rate weight of the fit (expert; overrides -q)")
    p.add_argument("--tune", default=DEFAULT_TUNE, choices=DISTORTIONS,
                   help=f"what the fit minimises besides the rate: psnr (MSE, the highest PSNR), "
                        f"ssim (0.7 L1 + 0.3 (1 - SSIM)) or balanced (half each: most of psnr's "
                        f"PSNR, about ssim's MS-SSIM); default {DEFAULT_TUNE}")
    p.add_argument("--init", default="default", help="default | random | PATH to an init file")
    p.add_argument("--no-meta-lr", action="store_true",
                   help="ignore the init's Meta-SGD step sizes (plain Adam for every tensor)")
    p.add_argument("--gop", type=int, help="frames per network (default 120)")
    p.add_argument("--scale", type=_scale, default="auto", metavar="auto|N",
                   help="fit frames N times smaller in each direction, resized back on decode "
                        "(1 = the source size; auto: chosen from the preset's budget and -q, lower "
                        "rungs smaller, see README)")
    p.add_argument("--frames", help="frame range a:b to encode")
    p.add_argument("--size", help="WxH of a raw YUV input")
    p.add_argument("--fps", help="frame rate of a raw YUV or PNG input (e.g. 30000/1001)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, help="peak Adam learning rate (expert; default: the preset's)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda: where the fit runs (auto: "
                   "CUDA when available)")
    p.add_argument("--jobs", type=int, default=1,
                   help="GOPs fitted at once, in worker processes (default 1; same bytes for any N)")
    p.add_argument("--distributed", action="store_true",
                   help="under torchrun: split the GOPs over the ranks, rank 0 writes the file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _common_overwrite(p)
    a = p.parse_args(argv)
    _check_device(a.device)
    _check_bounds(a, {"lr": ("(]", 0, math.inf), "batch": ("[]", 1, math.inf), "jobs": ("[]", 1, math.inf)})
    presets.check_preset(a.preset)
    if not a.distributed and os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
        raise NervcError("started by torchrun with several ranks: add --distributed to split the "
                         "GOPs over them (otherwise every rank would encode the whole video)")
    r = encode(a.input, a.output, quality=a.quality, steps=a.steps, bpp=a.bpp, lam=a.lam,
               init=a.init, gop=a.gop, frames=_frames(a.frames), size=parse_size(a.size),
               fps=parse_fps(a.fps), seed=a.seed, device=a.device, lr=a.lr, batch=a.batch,
               progress=not a.quiet, overwrite=a.overwrite, jobs=a.jobs, distributed=a.distributed,
               preset=a.preset, meta_lr=not a.no_meta_lr, scale=a.scale, tune=a.tune)
    if r is None:  # a torch.distributed rank other than 0: rank 0 reports
        return 0
    print(f"{r.path}: {r.num_frames} frames {r.width}x{r.height} @ {float(r.fps):.3f} fps, "
          f"{r.num_bytes} bytes, {r.bpp:.4f} bpp, PSNR {r.psnr:.2f} dB, "
          f"encode {r.encode_seconds:.1f} s, init {r.init}, --tune {a.tune}")
    if (r.coded_width, r.coded_height) != (r.width, r.height):
        print(f"coded at {r.coded_width}x{r.coded_height} (--scale {a.scale}), resized to "
              f"{r.width}x{r.height} on decode")
    mp = r.width * r.height * r.num_frames / 1e6
    line = (f"preset {r.preset}{' (--steps given)' if a.steps is not None else ''}: {r.steps} steps, "
            f"{r.steps / max(r.encode_seconds, 1e-9):.2f} steps/s, {r.total_seconds / mp:.2f} s/MP "
            f"with the verification decode")
    if a.steps is None and a.lr is None and a.batch is None:
        gop = min(a.gop or DEFAULT_GOP, r.num_frames)
        predicted = presets.predict_seconds(r.preset, r.width, r.height, r.num_frames, gop,
                                            coded_hw=(r.coded_height, r.coded_width), tune=a.tune)
        line += f" (predicted {predicted / mp:.2f} s/MP for one thread)"
    print(line)
    share = presets.coded_share(r.width, r.height, r.coded_width, r.coded_height)
    rung = rung_weight(LADDER[a.quality].lam, share)
    if a.lam is None and a.bpp is None and r.lam > rung * (1 + 1e-6):
        as_q = next((q for q, x in LADDER.items() if abs(rung_weight(x.lam, share) - r.lam) <= 1e-6 * r.lam), None)
        print(f"-q {a.quality} fitted as -q {as_q} (lam {r.lam:.3g}): a fit this short cannot turn "
              "more bytes into picture; a slower preset can")
    if r.rollbacks:
        print(f"the fit diverged {r.rollbacks} time(s) and went back to its last good state at half "
              "the step size (a --seed or a slower --preset may fit better)")
    return 0


def decode_main(argv: list[str]) -> int:
    from codec.decoder import decode
    from nervcore.video_io import output_kind

    p = _Parser(prog="nervc decode", description="Decode a .nerv bitstream into a video.")
    p.add_argument("input", help=".nerv file")
    p.add_argument("output", help="output .mp4 (H.264), .mkv (FFV1 lossless), .y4m or folder (PNG)")
    p.add_argument("--frames", help="frame range a:b to decode (others are not touched)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--init", action="append", help="init file to look for the stream's init in")
    p.add_argument("--batch", type=int, default=8, help="frames per forward pass")
    p.add_argument("--quiet", action="store_true")
    _common_overwrite(p)
    a = p.parse_args(argv)
    _check_device(a.device)
    _check_bounds(a, {"batch": ("[]", 1, math.inf)})
    output_kind(a.output)  # an unknown output type fails before the decode, not after it
    r = decode(a.input, a.output, frames=_frames(a.frames), device=a.device, init=a.init,
               overwrite=a.overwrite, progress=not a.quiet, batch=a.batch)
    n = r.frames.shape[0]
    print(f"{a.output}: {n} frames {r.frames.shape[2]}x{r.frames.shape[1]}, decode "
          f"{r.decode_seconds:.2f} s ({r.fps_decoded:.1f} fps on {r.device})")
    return 0


def info_main(argv: list[str]) -> int:
    from bitstreams import BitstreamReader

    p = _Parser(prog="nervc info", description="Describe a .nerv bitstream section by section.")
    p.add_argument("input")
    a = p.parse_args(argv)
    r = BitstreamReader(a.input)
    h = r.header
    print(f"{a.input}: {r.size} bytes, nervc bitstream {r.version[0]}.{r.version[1]}")
    print(f"  video     {h.width}x{h.height}, {h.num_frames} frames @ {h.fps} fps "
          f"({8 * r.size / (h.width * h.height * h.num_frames):.4f} bpp)")
    if h.resized:
        print(f"  coded     {h.coded_width}x{h.coded_height}, resized to {h.width}x{h.height} on decode")
    print(f"  GOPs      {h.num_gops} of up to {h.gop_frames} frames")
    print(f"  model     {h.config.to_dict()} grid {h.grid_hw[0]}x{h.grid_hw[1]}")
    print(f"  init      {h.init_digest.hex()[:16] if h.has_init else 'none (random init)'}")
    gops = [r.read_gop(i) for i in range(len(r.sections))]
    coded = sum(4 * len(g.words) for g in gops)
    weights = len(gops) * sum(math.prod(shape) for _, shape in r.shapes)
    print(f"  rate      {8 * coded / weights:.3f} bits per weight ({weights} weights); side information "
          f"(header, section and tensor fields) {r.size - coded} bytes = {100 * (r.size - coded) / r.size:.2f} %")
    for i, (s, g) in enumerate(zip(r.sections, gops)):
        print(f"  GOP {i}: frames {s.first_frame}..{s.first_frame + s.num_frames - 1}, {s.length} bytes")
        mode = "delta from init" if h.has_init else "absolute"
        print(f"    {4 * len(g.words)} bytes of ANS words for every tensor ({mode})")
        for (name, shape), t in zip(r.shapes, g.tensors):
            model = f"levels -{t.K}..{t.K}, Laplace R={t.R}" if t.K else "all zero"
            print(f"    {name:24s} {str(tuple(shape)):18s} step {float(t.step):.3g}, {model}")
    return 0


def demo_main(argv: list[str]) -> int:
    """Encode and decode the bundled clip; print PSNR, bpp and times."""
    from codec.decoder import decode
    from codec.encoder import encode, rgb_psnr
    from codec.ladder import QUALITY_LEVELS
    from nervcore.video_io import read_video

    p = _Parser(prog="nervc demo", description="Encode + decode the bundled clip.")
    p.add_argument("--frames", default=None, help="frame range (default: all 120 frames)")
    p.add_argument("-q", "--quality", type=int, default=None, choices=QUALITY_LEVELS)
    p.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the encoder's)")
    p.add_argument("--keep", help="folder to keep demo.nerv and demo.mp4 in")
    a = p.parse_args(argv)
    _check_bounds(a, {"steps": ("[]", 0, math.inf)})
    clip = Path(__file__).resolve().parent / "data" / "carphone_qcif_120f.mp4"
    # everything that can be wrong with the options fails before the --keep folder is made
    video = read_video(clip, frames=_frames(a.frames))
    if a.keep and Path(a.keep).exists() and not Path(a.keep).is_dir():
        raise NervcError(f"--keep {a.keep}: exists and is not a directory")
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="nervc-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"demo: {clip.name}, {video.num_frames} frames {video.width}x{video.height}")
        kw = {"quality": a.quality} if a.quality else {}
        r = encode(video, work / "demo.nerv", overwrite=True, steps=a.steps, **kw)
        d = decode(work / "demo.nerv", work / "demo.mp4", overwrite=True)
        coded = f", coded at {r.coded_width}x{r.coded_height}" if (r.coded_width, r.coded_height) != (r.width, r.height) else ""
        print(f"encode: {r.num_bytes} bytes, {r.bpp:.4f} bpp, {r.encode_seconds:.1f} s (init {r.init}{coded})")
        print(f"decode: {d.decode_seconds:.2f} s ({d.fps_decoded:.1f} fps on {d.device})")
        print(f"PSNR (RGB, 8-bit): {rgb_psnr(d.frames, video.frames):.2f} dB")
        if a.keep:
            print(f"kept {work / 'demo.nerv'} and {work / 'demo.mp4'}")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def bench_main(argv: list[str]) -> int:
    """``bench [run|plot|table] ...``: options are parsed here with bench's own parsers, so that
    their errors follow nervc's one-line convention; bench's failures (its exit 2) exit 1."""
    from benchmarks import bench
    sub, rest = (argv[0], argv[1:]) if argv[:1] in (["run"], ["plot"], ["table"]) else ("run", argv)
    if sub != "run":
        module = importlib.import_module(f"benchmarks.{sub}")
        _raising(module.build_parser()).parse_args(rest)
        return EXIT_ERROR if module.main(rest) else 0
    a = _raising(bench.build_parser()).parse_args(rest)
    _check_bounds(a, {"steps": ("[]", 0, math.inf), "threads": ("[]", 0, math.inf)})
    return EXIT_ERROR if bench.run(a) else 0


# meta-train options that must be positive, non-negative or in a range (checked before any work)
META_TRAIN_BOUNDS = {
    "steps": ("[]", 0, math.inf), "minutes": ("[]", 0, math.inf), "stop_after": ("[]", 1, math.inf),
    "inner_steps": ("[]", 1, math.inf), "inner_lr": ("(]", 0, math.inf), "outer_lr": ("(]", 0, math.inf),
    "lr_lr": ("(]", 0, math.inf), "outer_decay": ("[]", 0, 1), "clip": ("[]", 0, math.inf),
    "tasks_per_step": ("[]", 1, math.inf), "scale_weights": ("[]", 0, math.inf),
    "frames": ("[]", 1, math.inf), "batch": ("[]", 1, math.inf), "frames_start": ("[]", 1, math.inf),
    "ramp": ("(]", 0, 1), "sides": ("[]", 1, math.inf), "grid": ("[]", 1, math.inf),
    "cache_mb": ("[]", 0, math.inf), "short_side": ("[]", 1, math.inf), "max_frames": ("[]", 1, math.inf),
    "max_tstride": ("[]", 1, math.inf), "threads": ("[]", 1, math.inf), "ckpt_minutes": ("[]", 0, math.inf),
    "clips": ("[]", 1, math.inf),
}


def meta_train_main(argv: list[str]) -> int:
    """``metanerv.train.main`` with nervc's error convention (it prints its own prefix)."""
    import torch.distributed as dist

    from metanerv import train
    a = _raising(train.build_parser()).parse_args(argv)
    _check_bounds(a, META_TRAIN_BOUNDS)
    try:
        train.run(a, argv)
        return 0
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "encode": (encode_main, "video -> .nerv"),
    "decode": (decode_main, ".nerv -> video"),
    "info": (info_main, "describe a .nerv file"),
    "demo": (demo_main, "encode + decode the bundled clip, print PSNR, bpp, times"),
    "bench": (bench_main, "rate-distortion benchmark against x264/x265/SVT-AV1"),
    "meta-train": (meta_train_main, "meta-learn an init from a folder of videos"),
}


def _usage() -> str:
    lines = ["usage: nervc COMMAND [options]   (nervc COMMAND -h for help)", "", "commands:"]
    lines += [f"  {name:11s} {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def _terminate_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary outputs are removed on the way out."""
    import signal
    import threading

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else EXIT_ERROR
    name, rest = argv[0], argv[1:]
    _terminate_as_interrupt()
    if name not in COMMANDS:
        print(f"nervc: error: unknown command {name!r} (one of {', '.join(COMMANDS)}; nervc -h for help)",
              file=sys.stderr)
        return EXIT_ERROR
    try:
        return COMMANDS[name][0](rest)
    except SystemExit as e:  # argparse -h
        return int(e.code or 0)
    except NervcError as e:
        print(f"nervc: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("nervc: interrupted (no partial output was written)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into head & co.
        return 0
    except MemoryError:
        print("nervc: error: out of memory", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # a bug: one line for users, the traceback on request
        if os.environ.get("NERVC_DEBUG"):
            raise
        msg = " ".join(str(e).split())[:300]
        print(f"nervc: internal error: {type(e).__name__}: {msg} (set NERVC_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
