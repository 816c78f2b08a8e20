"""One train clip encoded with ``--scale auto`` under a given ``AUTO_VISITS`` (and shorter-side
floor): is 24 visits per frame the right point for ``medium``?

    PYTHONPATH=. python benchmarks/results/auto-visits/visits_points.py CLIP FRAMES SRC VISITS MINSIDE PRESET Q[,Q] OUT.jsonl

SRC box-reduces the clip first (that reduced clip is the original). bpp counts the written
file's bytes over the original's pixels; PSNR is 8-bit RGB at the original size (mean of
per-frame MSE) of what ``codec.decoder.decode`` returns (it resizes to the original size).
"""
from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import codec.presets as presets
from benchmarks.trials import load_clip
from codec.decoder import decode
from codec.encoder import encode_ladder, frame_mse, psnr_of_mse


def main(argv: list[str]) -> int:
    clip, n, src_scale, visits, min_side, preset, qs, out = argv[:8]
    n, src_scale = int(n), int(src_scale)
    presets.AUTO_VISITS, presets.AUTO_MIN_SIDE = float(visits), int(min_side)
    qs = [int(q) for q in qs.split(",")]
    video = load_clip(clip, n, src_scale)
    full = video.frames
    _, h, w, _ = full.shape
    cw, ch = presets.auto_coded_size(preset, w, h, n)
    with tempfile.TemporaryDirectory() as tmp:
        outs = {q: Path(tmp) / f"q{q}.nerv" for q in qs}
        t0 = time.monotonic()
        res = encode_ladder(video, outs, preset=preset, progress=False, overwrite=True)
        enc_s = time.monotonic() - t0
        for q in qs:
            r = res[q]
            dec = decode(outs[q]).frames
            size = outs[q].stat().st_size
            rec = {"clip": Path(clip).name, "frames": n, "src_scale": src_scale, "source": f"{w}x{h}",
                   "visits": float(visits), "min_side": int(min_side), "coded": f"{cw}x{ch}",
                   "preset": preset, "q": q, "bytes": size, "bpp": 8.0 * size / (h * w * n),
                   "psnr": psnr_of_mse(frame_mse(dec, full)), "steps": r.steps, "encode_s": round(enc_s, 1),
                   "machine": f"{platform.node()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"}
            print(json.dumps(rec), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
