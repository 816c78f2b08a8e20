"""Run one hostile input through the reader and the decoder and classify what happened.

Acceptable outcomes: ``ok`` (decoded; frames of the declared shape) and ``rejected``
(``nervcore.errors.NervcError`` with a readable one-line message). Everything else is a failure:
``crash`` (any other exception), ``bad-message`` (a NervcError whose message is empty,
multi-line, unprintable or huge), and, decided by the runner, ``hang`` (per-case timeout),
``memory`` (RSS over the limit) and ``died`` (the worker process vanished: segfault, abort).

Decode work is bounded so that a legitimately huge stream (the format allows 10 million frames
per file, and a NeRV GOP can claim any number of frames at no cost in bytes) does not read as
a hang: when decoding every frame would cost more than ``MAX_WORK`` multiply-accumulates (plus a
fixed cost per frame for the per-batch overhead of tiny frames), only
the first and the last frame are decoded (``frames=``), and when even one frame is too costly,
the first and last GOPs are parsed and entropy-decoded without rendering.
"""
from __future__ import annotations

import os
import traceback

MAX_WORK = 3e9  # MACs per case
FRAME_OVERHEAD = 3e5  # MAC-equivalents of the fixed per-frame cost (a forward pass per 8 frames)
MAX_MESSAGE = 600


def message_problem(msg: str) -> str | None:
    if not msg.strip():
        return "empty message"
    if "\n" in msg or "\r" in msg:
        return "multi-line message"
    if len(msg) > MAX_MESSAGE:
        return f"message of {len(msg)} characters"
    if not msg.isprintable():
        return "unprintable message"
    return None


def run_file(path: str, init: list[str] | None) -> dict:
    """Reader + decoder on ``path``; returns {"outcome", "message", "traceback"?, "mode"}."""
    from bitstreams import BitstreamReader
    from bitstreams.format import macs_per_pixel
    from codec.decoder import decode, load_gop_model
    from nervcore.errors import NervcError

    mode = "full"
    try:
        reader = BitstreamReader(path)
        h = reader.header
        s = h.config.total_stride
        per_frame = macs_per_pixel(h.config) * (-(-h.height // s) * s) * (-(-h.width // s) * s) + FRAME_OVERHEAD
        if h.num_frames * per_frame <= MAX_WORK:
            r = decode(path, None, device="cpu", init=init)
            _check_frames(r, h, h.num_frames)
        elif per_frame <= MAX_WORK / 2:
            mode = "ends"
            for sel in (slice(0, 1), slice(h.num_frames - 1, h.num_frames)):
                r = decode(path, None, frames=sel, device="cpu", init=init)
                _check_frames(r, h, 1)
        else:
            mode = "weights"
            init_state = _init_state(h, init)
            for g in {0, len(reader.sections) - 1}:
                load_gop_model(reader, g, init_state)
        return {"outcome": "ok", "mode": mode}
    except NervcError as e:
        msg = str(e)
        problem = message_problem(msg)
        if problem:
            return {"outcome": "bad-message", "message": msg[:2000], "problem": problem, "mode": mode,
                    "type": type(e).__name__, "where": _where(e)}
        return {"outcome": "rejected", "message": msg, "mode": mode}
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - pyo3 PanicException derives from BaseException
        return {"outcome": "crash", "type": type(e).__name__, "message": str(e)[:2000], "mode": mode,
                "where": _where(e), "traceback": traceback.format_exc()[-6000:]}


def _init_state(h, init):
    if not h.has_init:
        return None
    from codec.decoder import init_state_for_header
    return init_state_for_header(h, init, "fuzz")


def _check_frames(r, h, n: int) -> None:
    import numpy as np
    expect = (n, h.height, h.width, 3)
    if r.frames.shape != expect or r.frames.dtype != np.uint8:
        raise AssertionError(f"decoded {r.frames.shape} {r.frames.dtype}, header says {expect} uint8")


def _where(e: BaseException) -> str:
    """file:line of the innermost frame inside the project (the failure's identity)."""
    tb = traceback.extract_tb(e.__traceback__)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    inside = [f for f in tb if f.filename.startswith(root)]
    f = (inside or tb or [None])[-1]
    if f is None:
        return "?"
    return f"{os.path.relpath(f.filename, root)}:{f.lineno}"


def peak_rss_reset() -> None:
    """Reset this process's peak-RSS counter (Linux); no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_kb() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
