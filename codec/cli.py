"""``nervc`` command line: a thin layer over the Python API.

Every subcommand is a ``main``-style function taking ``argv`` so tests call it directly;
``main(argv)`` dispatches. User errors print one line (``nervc: error: ...``) and exit 1;
no partial output is left under an output's name because every writer is atomic; an encode
stopped part-way keeps its finished GOPs in ``OUT.nerv.partial`` for ``--resume`` (the line
says so, ``codec.resume``).
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Callable

from nervcore.errors import NervcError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a C program killed by the closed pipe would report


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise NervcError(_parser_message(self.prog, message))


def _parser_message(prog: str, message: str) -> str:
    """An argparse complaint under the one ``nervc: error:`` prefix: ``decode: the following
    arguments are required: output (nervc decode -h for help)``."""
    return f"{prog.removeprefix('nervc ')}: {message} ({prog} -h for help)"


def version_text() -> str:
    """``nervc X.Y.Z (bitstream M.m)``: the installed package's version and the format it writes."""
    from importlib.metadata import PackageNotFoundError, version

    from bitstreams.format import VERSION_MAJOR, VERSION_MINOR
    try:
        v = version("nervc")
    except PackageNotFoundError:  # run from a source tree that was never installed
        v = "unknown"
    return f"nervc {v} (bitstream {VERSION_MAJOR}.{VERSION_MINOR})"


def _frames(spec):
    from nervcore.video_io import parse_frame_range
    return parse_frame_range(spec)


def _common_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--overwrite", action="store_true", help="overwrite an existing output")




def _check_device(device: str) -> None:
    """``codec.devices.pick_device``, run before any work: an unknown name or ``cuda`` without
    CUDA is a user error, not a torch exception from deep inside training."""
    from codec.devices import pick_device
    pick_device(device)


def _check_bounds(a: argparse.Namespace, bounds: dict[str, tuple[str, float, float]]) -> None:
    """``bounds``: {dest: (kind, low, high)}; kind "[]" or "(]" says whether ``low`` is
    allowed. Options left unset (None) are not checked; list values are checked item by item."""
    from codec.options import check_bound
    for dest, (kind, low, high) in bounds.items():
        value = getattr(a, dest)
        for v in value if isinstance(value, (tuple, list)) else (value,):
            check_bound(dest.replace("_", "-"), v, low, high, kind == "[]", shown=value)


def _raising(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A plain argparse parser (bench, meta-train: they also run as ``python -m``) that raises
    NervcError, so a bad option is one ``nervc: error:`` line and exit 1 like everywhere else."""
    def error(message: str):
        raise NervcError(_parser_message(parser.prog, message))
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
    from codec.ladder import DEFAULT_QUALITY, QUALITY_LEVELS
    from codec.options import EncodeOptions
    from metanerv.fit import DEFAULT_TUNE, DISTORTIONS
    from nervcore.video_io import parse_fps, parse_size

    if _wants_preset_help(argv):
        print(presets.table_text())
        return 0
    p = _Parser(prog="nervc encode", description="Encode a video into a .nerv bitstream.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=presets.table_text() + "\n\n--steps, --batch and --lr, when given, win over the preset's.")
    p.add_argument("input", help="video file, raw .yuv/.i420, .y4m, folder of PNG frames, or - for y4m "
                   "on standard input")
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
    p.add_argument("--latent-encoder", metavar="PATH",
                   help="(experimental) start each GOP's grid from this latent encoder's proposal "
                        "(python -m metanerv.latent_train makes one; it did not pay yet: docs/experiments.md)")
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
    p.add_argument("--resume", action="store_true",
                   help="continue a stopped encode from OUTPUT.partial: same input and options, same bytes")
    _common_overwrite(p)
    a = p.parse_args(argv)
    if not str(a.output).lower().endswith(".nerv"):  # never a .nerv written under a video's name
        raise NervcError(f"{a.output}: nervc encode writes a .nerv bitstream; name the output NAME.nerv")
    options = EncodeOptions(preset=a.preset, steps=a.steps, batch=a.batch, lr=a.lr, bpp=a.bpp, lam=a.lam,
                            tune=a.tune, init=a.init, meta_lr=not a.no_meta_lr, latent_encoder=a.latent_encoder,
                            gop=a.gop, scale=a.scale,
                            frames=_frames(a.frames), size=parse_size(a.size), fps=parse_fps(a.fps),
                            seed=a.seed, device=a.device, jobs=a.jobs, distributed=a.distributed,
                            progress=not a.quiet, overwrite=a.overwrite, resume=a.resume)
    options.check([a.quality])
    if not a.distributed and os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
        raise NervcError("started by torchrun with several ranks: add --distributed to split the "
                         "GOPs over them (otherwise every rank would encode the whole video)")
    r = encode(a.input, a.output, options, quality=a.quality)
    if r is None:  # a torch.distributed rank other than 0: rank 0 reports
        return 0
    print(f"{r.path}: {r.num_frames} frames {r.width}x{r.height} @ {float(r.fps):.3f} fps, "
          f"{r.num_bytes} bytes, {r.bpp:.4f} bpp, PSNR {r.psnr:.2f} dB (RGB, of the decoded file; the progress bar shows the fit's batches), "
          f"encode {r.encode_seconds:.1f} s, init {r.init}, --tune {a.tune}")
    if r.kept_gops:
        print(f"resumed: the first {r.kept_gops} GOPs kept from {r.path}.partial, the others fitted now "
              "(the steps below count every GOP, the times this run's)")
    if (r.coded_width, r.coded_height) != (r.width, r.height):
        print(f"coded at {r.coded_width}x{r.coded_height} (--scale {a.scale}), resized to "
              f"{r.width}x{r.height} on decode")
    mp = r.width * r.height * r.num_frames / 1e6
    line = (f"preset {r.preset}{' (--steps given)' if a.steps is not None else ''}: {r.steps} steps, "
            f"{r.steps / max(r.encode_seconds, 1e-9):.2f} steps/s, {r.total_seconds / mp:.2f} s/MP "
            f"with the verification decode")
    if r.predicted_seconds is not None:
        line += f" (predicted {r.predicted_seconds / mp:.2f} s/MP for one thread)"
    print(line)
    if r.fitted_as is not None:
        print(f"-q {a.quality} fitted as -q {r.fitted_as} (lam {r.lam:.3g}): a fit this short cannot turn "
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
    p.add_argument("output", help="output .mp4 (H.264), .mkv (FFV1 lossless), .y4m, folder (PNG), "
                   "or - for y4m on standard output")
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
    # y4m on stdout ("-") is the video itself: every message goes to stderr
    print(f"{a.output}: {r.num_frames} frames {r.width}x{r.height}, decode "
          f"{r.decode_seconds:.2f} s ({r.fps_decoded:.1f} fps on {r.device})",
          file=sys.stderr if a.output == "-" else sys.stdout)
    return 0


def info_main(argv: list[str]) -> int:
    from codec.info import main as info
    return info(argv)


def demo_main(argv: list[str]) -> int:
    """Encode and decode the bundled clip; print PSNR, bpp and times."""
    from codec.demo import main as demo
    return demo(argv)


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
    lines = ["usage: nervc COMMAND [options]   (nervc COMMAND -h for help; nervc --version)", "", "commands:"]
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


OOM_ADVICE = ("free memory, or lower what one step holds: --jobs 1, a shorter --gop, a smaller "
              "--batch, or --scale 2 for large frames")


def _is_out_of_memory(e: BaseException) -> bool:
    """torch reports a failed allocation as a RuntimeError (CPU: ``alloc_cpu.cpp``, CUDA: ``CUDA
    out of memory``), not as MemoryError."""
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text.lower() or "alloc_cpu" in text
                                            or "DefaultCPUAllocator" in text)


def _kept_note(e: BaseException) -> str:
    """The end of an error line when the encode kept its finished GOPs (``codec.resume``)."""
    note = getattr(e, "resume_note", None)
    return f" ({note}: --resume continues)" if note else ""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else EXIT_ERROR
    if argv[0] in ("-V", "--version"):
        print(version_text())
        return 0
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
        print(f"nervc: error: {e}{_kept_note(e)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as e:
        note = getattr(e, "resume_note", None)  # codec.resume: an encode's finished GOPs were kept
        print(f"nervc: interrupted; {note}: rerun the same command with --resume to continue" if note
              else "nervc: interrupted (no partial output was written)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of our stdout stopped (| head, a player closed): quietly,
        _silence_stdout()     # with the status a SIGPIPE death gives, so a pipeline can tell
        return EXIT_BROKEN_PIPE
    except MemoryError as e:
        print(f"nervc: error: out of memory; {OOM_ADVICE}{_kept_note(e)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # a bug: one line for users, the traceback on request
        if os.environ.get("NERVC_DEBUG"):
            raise
        if _is_out_of_memory(e):
            print(f"nervc: error: out of memory ({type(e).__name__}); {OOM_ADVICE}{_kept_note(e)}", file=sys.stderr)
            return EXIT_ERROR
        msg = " ".join(str(e).split())[:300]
        print(f"nervc: internal error: {type(e).__name__}: {msg} (set NERVC_DEBUG=1 for a traceback)"
              f"{_kept_note(e)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
