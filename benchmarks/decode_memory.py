"""Peak memory of ``nervc decode`` against the video's length (issue 34: decoding 2,000 frames of
640x360 should peak within 50 MB of decoding 200).

Makes genuine ``.nerv`` files of one video at two lengths, cheaply: the shorter is encoded
(a synthetic moving pattern, ``--steps`` fitting steps per GOP, ``--scale`` as given); the longer
repeats its GOP sections with the bitstream writer, each re-indexed with its own frame range,
so it is the file an encoder of the longer video would write had every stretch fitted to the
same weights (``nervc decode`` cannot tell: it renders every frame of every GOP). Each file is
decoded by ``python -m codec decode`` in a fresh process to ``.mp4`` and to y4m on standard
output (``-``, into /dev/null); the peak resident memory of that process (``wait4``'s
``ru_maxrss``) and its wall time are recorded. The decode is started by a bare ``python -c``
launcher (about 10 MB): Linux carries the forking process's peak into its child's
``ru_maxrss``, so forking from this process (over 1 GB after the encode) would report that
for every decode.

    python -m benchmarks.decode_memory [--frames 200,2000] [--size 640x360] [--gop 100]
                                       [--steps 2] [--scale 2] [--outputs mp4,y4m]
                                       [--work DIR] [--out F.json]

Writes the JSON and a markdown table next to it (default
``benchmarks/results/decode-memory/decode_memory.*``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from benchmarks.speed import _commit, machine, write_json_and_markdown
from nervcore.video_io import VideoSource

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "decode-memory"
BAR_MB = 50  # the bar: the longer decode peaks within this many MB of the shorter
MB = 1_000_000


class MovingPattern(VideoSource):
    """``num_frames`` frames of a sliding colour gradient, made as they are read."""

    def __init__(self, num_frames: int, width: int, height: int, fps: Fraction = Fraction(25)) -> None:
        self.path, self.width, self.height = "<moving pattern>", width, height
        self.fps, self.num_frames = fps, num_frames

    def _frames(self):
        y, x = np.mgrid[0:self.height, 0:self.width]
        for i in range(self.num_frames):
            f = np.empty((self.height, self.width, 3), np.uint8)
            f[..., 0] = (x + 3 * i) % 256
            f[..., 1] = (y + 2 * i) % 256
            f[..., 2] = ((x + y) // 4 + i) % 256
            yield f


def encode_base(path: Path, frames: int, width: int, height: int, gop: int, steps: int, scale: int) -> dict:
    """The shorter file, encoded; its size and the encode's time."""
    from codec.encoder import encode
    t = time.perf_counter()
    r = encode(MovingPattern(frames, width, height), path, steps=steps, gop=gop, scale=scale,
               overwrite=True, progress=False, device="cpu")
    return {"frames": frames, "bytes": r.num_bytes, "coded": [r.coded_width, r.coded_height],
            "psnr": round(r.psnr, 2), "encode_s": round(time.perf_counter() - t, 1)}


def repeat_gops(base: Path, path: Path, frames: int) -> dict:
    """``base``'s GOP sections repeated until ``frames`` frames (a multiple of its length)."""
    from bitstreams import BitstreamReader, BitstreamWriter
    from bitstreams.format import GopRecord
    reader = BitstreamReader(base)
    h = reader.header
    if frames % h.num_frames:
        raise SystemExit(f"--frames: {frames} is not a multiple of the first length {h.num_frames}")
    gops = [reader.read_gop(i) for i in range(h.num_gops)]
    out = [GopRecord(k * h.num_frames + g.first_frame, g.num_frames, g.tensors, g.words)
           for k in range(frames // h.num_frames) for g in gops]
    with BitstreamWriter(path, replace(h, num_frames=frames, num_gops=len(out))) as w:
        for g in out:
            w.add_gop(g)
        size = w.commit()
    return {"frames": frames, "bytes": size, "gops": len(out)}


# fork + exec from a small process, wait4 for the child's ru_maxrss (KiB), write "rss status"
LAUNCHER = ("import os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[2], sys.argv[2:])\n"
            "_, st, ru = os.wait4(pid, 0)\n"
            "open(sys.argv[1], 'w').write(f'{ru.ru_maxrss} {os.waitstatus_to_exitcode(st)}')\n")


def peak_decode(nerv: Path, output: str, work: Path) -> dict:
    """``python -m codec decode nerv output`` in a fresh process: its peak RSS and wall time."""
    target = "-" if output == "y4m" else str(work / f"{nerv.stem}.{output}")
    cmd = [sys.executable, "-m", "codec", "decode", str(nerv), target, "--quiet", "--device", "cpu", "-y"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    report = work / "rusage.txt"
    with open(work / "stderr.txt", "w+") as err:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *cmd], cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL, stderr=err, check=False)
        wall = time.perf_counter() - t
        err.seek(0)
        message = err.read().strip()
    rss_kib, status = (int(x) for x in report.read_text().split())
    if status:
        raise SystemExit(f"{' '.join(cmd)} failed ({status}): {message}")
    res = {"output": output, "peak_rss_bytes": rss_kib * 1024, "wall_s": round(wall, 1)}
    if output != "y4m":
        res["output_bytes"] = os.path.getsize(target)
        os.remove(target)
    return res


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"# Decode peak memory against length ({res['date']}, commit {res['commit']})", "",
             f"`{res['command']}` on {m['cpu']} ({m['cores']} cores), torch {m['torch']}, "
             f"python {m['python']}, load at start {m['loadavg']}.", "",
             f"Video {res['size']}, GOPs of {res['gop']} frames, coded at {res['base']['coded'][0]}x"
             f"{res['base']['coded'][1]} (`--scale {res['scale']}`, `--steps {res['steps']}`); the "
             f"{res['base']['frames']}-frame file encoded ({res['base']['bytes']} B, "
             f"{res['base']['encode_s']} s), the longer ones its GOP sections repeated. Peak RSS "
             "of the `python -m codec decode` process (`wait4` `ru_maxrss`; 1 MB = 10^6 bytes).", "",
             "| frames | output | peak RSS (MB) | decode wall (s) |", "|---|---|---|---|"]
    for r in res["runs"]:
        lines.append(f"| {r['frames']} | {r['output']} | {r['peak_rss_bytes'] / MB:.1f} | {r['wall_s']} |")
    lines += [""]
    for d in res["growth"]:
        verdict = "within" if d["within_bar"] else "**over**"
        lines.append(f"- {d['output']}: {d['long']} frames peak {d['delta_mb']:+.1f} MB against {d['short']} "
                     f"frames ({verdict} the {BAR_MB} MB bar).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.decode_memory", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="200,2000", help="video lengths; the first is encoded, the others "
                    "repeat its GOPs (multiples of it)")
    ap.add_argument("--size", default="640x360", help="WxH of the video")
    ap.add_argument("--gop", type=int, default=100, help="frames per GOP")
    ap.add_argument("--steps", type=int, default=2, help="fitting steps per GOP of the encoded file")
    ap.add_argument("--scale", type=int, default=2, help="coded size: the video's / N")
    ap.add_argument("--outputs", default="mp4,y4m", help="decode outputs: mp4, mkv, y4m (y4m: '-' into /dev/null)")
    ap.add_argument("--work", default=None, help="folder for the .nerv files (default: a temporary one)")
    ap.add_argument("--out", default=str(RESULTS / "decode_memory.json"))
    argv = sys.argv[1:] if argv is None else list(argv)
    a = ap.parse_args(argv)
    lengths = [int(x) for x in a.frames.split(",") if x]
    width, height = (int(x) for x in a.size.lower().split("x"))
    outputs = [x for x in a.outputs.split(",") if x]
    res = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(),
           "command": " ".join(["python -m benchmarks.decode_memory", *argv]),
           "machine": machine(torch.device("cpu")), "size": a.size, "gop": a.gop, "steps": a.steps,
           "scale": a.scale, "runs": [], "growth": []}
    with tempfile.TemporaryDirectory(prefix="nervc-decode-memory-") as tmp:
        work = Path(a.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        files = {lengths[0]: work / f"video_{lengths[0]}f.nerv"}
        res["base"] = encode_base(files[lengths[0]], lengths[0], width, height, a.gop, a.steps, a.scale)
        print(f"encoded {lengths[0]} frames: {res['base']}", flush=True)
        res["files"] = [{"frames": lengths[0], "bytes": res["base"]["bytes"]}]
        for n in lengths[1:]:
            files[n] = work / f"video_{n}f.nerv"
            res["files"].append(repeat_gops(files[lengths[0]], files[n], n))
        for n in lengths:
            for o in outputs:
                r = {"frames": n, **peak_decode(files[n], o, work)}
                res["runs"].append(r)
                print(f"{n} frames -> {o}: peak RSS {r['peak_rss_bytes'] / MB:.1f} MB, {r['wall_s']} s", flush=True)
    peak = {(r["frames"], r["output"]): r["peak_rss_bytes"] for r in res["runs"]}
    for n in lengths[1:]:
        for o in outputs:
            delta = (peak[(n, o)] - peak[(lengths[0], o)]) / MB
            res["growth"].append({"output": o, "short": lengths[0], "long": n, "delta_mb": round(delta, 1),
                                  "within_bar": delta <= BAR_MB})
    out = Path(a.out)
    write_json_and_markdown(out, res, markdown(res))
    print(markdown(res))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return res


if __name__ == "__main__":
    main()
