"""The rate the fit lands at for a rate weight, per coded pixel (issue 11, ``--bpp``).

``ladder``: one train clip at `medium`, rungs 1-5 each encoded alone (one coded size: ``--bpp``
fits at the default rung's), per rung the rate weight, the coded size and the levels' bits (32 per ANS word of the
written file: what ``codec.encoder.rate_prior`` has to predict), the file's bytes and PSNR.
``bpp``: the same clip encoded with ``--bpp`` at each target: where it landed, at what PSNR.

    PYTHONPATH=. python benchmarks/results/rate-prior/points.py ladder CLIP FRAMES REDUCE OUT.jsonl
    PYTHONPATH=. python benchmarks/results/rate-prior/points.py bpp CLIP FRAMES REDUCE OUT.jsonl T1,T2,...
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.trials import load_clip, machine
from bitstreams import BitstreamReader
from codec.encoder import encode
from codec.ladder import LADDER


def levels_bits(path: Path) -> int:
    """The ANS payload of every GOP of ``path``: 32 bits per word."""
    r = BitstreamReader(path)
    return sum(32 * len(r.read_gop(i).words) for i in range(r.header.num_gops))


def main(argv: list[str]) -> int:
    mode, clip, frames, reduce, out = argv[:5]
    video = load_clip(clip, int(frames), int(reduce))
    n, h, w, _ = video.frames.shape
    tag = {"clip": Path(clip).name, "reduce": int(reduce), "source": f"{w}x{h}", "frames": n, "mode": mode,
           "machine": machine(), "git": _git()}
    recs = []
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "ladder":
            qs = [1, 2, 3, 4, 5]
            outs = {q: Path(tmp) / f"q{q}.nerv" for q in qs}
            for q in qs:  # each rung alone: a --bpp fit has no ladder sharing its stable phase
                t0 = time.monotonic()
                r = encode(video, outs[q], quality=q, progress=False, overwrite=True, preset="medium")
                secs = time.monotonic() - t0
                recs.append({"q": q, "lam": LADDER[q].lam, "coded": f"{r.coded_width}x{r.coded_height}",
                             "levels_bits": levels_bits(outs[q]), "bytes": r.num_bytes,
                             "bpp": 8.0 * r.num_bytes / (n * h * w), "psnr": r.psnr, "encode_s": round(secs, 1)})
        else:
            for t in (float(x) for x in argv[5].split(",")):
                o = Path(tmp) / "t.nerv"
                t0 = time.monotonic()
                r = encode(video, o, progress=False, overwrite=True, preset="medium", bpp=t)
                recs.append({"target": t, "lam": r.lam, "coded": f"{r.coded_width}x{r.coded_height}",
                             "levels_bits": levels_bits(o), "bytes": r.num_bytes,
                             "bpp": 8.0 * r.num_bytes / (n * h * w), "psnr": r.psnr,
                             "encode_s": round(time.monotonic() - t0, 1), "steps": r.steps})
    with open(out, "a") as f:
        for r in recs:
            r = {**tag, **r}
            print(json.dumps(r), flush=True)
            f.write(json.dumps(r) + "\n")
    return 0


def _git() -> str:
    import subprocess
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
