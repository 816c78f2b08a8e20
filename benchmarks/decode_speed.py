"""Decode speed on the CPU: the batched ``forward`` the decoder used to run, ``NeRV.render``, and
the decoder's frame-parallel rendering.

Each path runs the shipped init's model (its FiLM is non-zero, so the fold is exercised) at each
size and thread count, in interleaved rounds in one process; the ratio is the median over
rounds of forward's time over the path's, so a shared machine's drifting load hits both alike.
``--stream F.nerv`` also times ``codec.decoder.decode`` of that file end to end (entropy
decoding, weights, frames to uint8; no output file) and reports its frames/s.

    python -m benchmarks.decode_speed [--sizes 176x144,352x288,832x480] [--threads 1,2]
                                      [--rounds 5] [--init I] [--stream F.nerv] [--out F.json]

Writes the JSON and a markdown table next to it (default ``benchmarks/results/decode_v2.*``).
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmarks.speed import _commit, machine, parse_sizes, write_json_and_markdown
from codec.decoder import render
from metanerv.init_file import DEFAULT_INIT, InitFile, load_init
from metanerv.model import build_model, frame_times, grid_size_for

RESULTS = Path(__file__).resolve().parent / "results"
FRAMES = 16  # frames decoded per timing (two of the decoder's batches of 8)


def _time(fn, t: torch.Tensor, batch: int) -> float:
    w0 = time.perf_counter()
    for i in range(0, t.shape[0], batch):
        fn(t[i:i + batch])
    return time.perf_counter() - w0


def compare(width: int, height: int, threads: int, rounds: int, init: InitFile) -> dict:
    """Frames/s of forward (batch 8) and render at one size, interleaved rounds."""
    torch.set_num_threads(threads)
    model = build_model(init.config, grid_size_for(height, width, init.config), init.state).eval()
    t = frame_times(list(range(FRAMES)), FRAMES)
    idx = list(range(FRAMES))
    with torch.no_grad():
        paths = {"forward": model.forward, "render": model.render}
        if threads > 1:  # the decoder's path: whole frames on `threads` worker threads
            paths["render-frames"] = lambda tt: render(model, idx[:tt.shape[0]], FRAMES, height, width,
                                                       torch.device("cpu"), 8)
        for fn in paths.values():
            fn(t[:8])  # warm-up
        times: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(rounds):
            for k, fn in paths.items():
                times[k].append(_time(fn, t, 8))
    ratio = {k: statistics.median(f / r for f, r in zip(times["forward"], v)) for k, v in times.items()}
    return {"width": width, "height": height, "threads": threads, "rounds": rounds,
            "fps": {k: FRAMES / min(v) for k, v in times.items()}, "speedup": ratio}


def stream_fps(path: str, threads: int) -> dict:
    """``codec.decoder.decode`` of a file, end to end (best of two)."""
    from codec.decoder import decode
    torch.set_num_threads(threads)
    runs = [decode(path, device="cpu") for _ in range(2)]
    return {"stream": str(path), "threads": threads, "frames": int(runs[0].frames.shape[0]),
            "fps": max(r.fps_decoded for r in runs)}


def markdown(res: dict) -> str:
    lines = [f"Decode speed, {res['date']}, commit {res['commit']}, init {res.get('init', '?')}, {res['machine']['cpu']} "
             f"({res['machine']['cores']} cores), load at start {res['machine']['loadavg']}.", "",
             "fps (speed-up over forward: median of interleaved rounds); forward = the batched "
             "network (batch 8) the decoder ran before; render = NeRV.render (FiLM folded, one frame "
             "at a time); render-frames = the decoder's path, whole frames on `threads` worker threads "
             "(network and uint8 conversion).", "",
             "| size | threads | forward | render | render-frames |", "|---|---|---|---|---|"]
    for c in res["compare"]:
        cells = [f"{c['fps'][k]:.1f} (x{c['speedup'][k]:.2f})" if k in c["fps"] else "—"
                 for k in ("forward", "render", "render-frames")]
        lines.append(f"| {c['width']}x{c['height']} | {c['threads']} | " + " | ".join(cells) + " |")
    if res["streams"]:
        lines += ["", "| stream | threads | frames | decode fps (end to end) |", "|---|---|---|---|"]
        lines += [f"| {s['stream']} | {s['threads']} | {s['frames']} | {s['fps']:.1f} |" for s in res["streams"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.decode_speed", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="176x144,352x288,832x480", help="WxH list")
    ap.add_argument("--threads", default="1,2", help="CPU threads (one measurement per value)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--init", default=str(DEFAULT_INIT), help="init whose model is timed (default: the shipped one)")
    ap.add_argument("--stream", action="append", default=[], help="a .nerv file to decode end to end")
    ap.add_argument("--out", default=str(RESULTS / "decode_v2.json"))
    a = ap.parse_args(argv)
    threads = [int(x) for x in a.threads.split(",") if x]
    init = load_init(a.init)
    res = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(),
           "machine": machine(torch.device("cpu")), "init": init.short_id, "compare": [], "streams": []}
    for w, h in parse_sizes(a.sizes):
        for th in threads:
            c = compare(w, h, th, a.rounds, init)
            res["compare"].append(c)
            print(f"{w}x{h} t{th}: " + ", ".join(f"{k} {v:.1f} fps (x{c['speedup'][k]:.2f})"
                                                 for k, v in c["fps"].items()), flush=True)
    for s in a.stream:
        for th in threads:
            r = stream_fps(s, th)
            res["streams"].append(r)
            print(f"{s} t{th}: {r['fps']:.1f} fps end to end", flush=True)
    out = Path(a.out)
    write_json_and_markdown(out, res, markdown(res))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return res


if __name__ == "__main__":
    main()
