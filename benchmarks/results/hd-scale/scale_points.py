"""One HD clip coded at a reduced internal resolution: downscale (box), encode, decode,
upscale (bicubic) and measure against the original frames.

    PYTHONPATH=. python benchmarks/results/hd-scale/scale_points.py CLIP FRAMES SCALE PRESET Q[,Q] OUT.jsonl [SRC]

SRC (optional, default 1) box-reduces the clip first and makes that the original: smaller
sources from the HD train clips.

bpp counts the written file's bytes over the *original* pixels; PSNR is 8-bit RGB at the
original size (mean of per-frame MSE), so every scale is on one rate-distortion axis.
"""
from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from codec.decoder import decode
from codec.encoder import encode_ladder, frame_mse, psnr_of_mse
from nervcore.video_io import Video, read_video


def resize(frames: np.ndarray, hw: tuple[int, int], mode: str) -> np.ndarray:
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    kw = {} if mode == "area" else {"align_corners": False}
    y = F.interpolate(x, size=hw, mode=mode, **kw)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def main(argv: list[str]) -> int:
    clip, n, scale, preset, qs, out = argv[:6]
    n, scale = int(n), int(scale)
    src_scale = int(argv[6]) if len(argv) > 6 else 1
    qs = [int(q) for q in qs.split(",")]
    video = read_video(clip, frames=slice(0, n))
    full = video.frames
    if src_scale > 1:
        full = resize(full, (full.shape[1] // src_scale, full.shape[2] // src_scale), "area")
    _, h, w, _ = full.shape
    small_hw = (round(h / scale), round(w / scale))
    src = full if scale == 1 else resize(full, small_hw, "area")
    with tempfile.TemporaryDirectory() as tmp:
        outs = {q: Path(tmp) / f"q{q}.nerv" for q in qs}
        t0 = time.monotonic()
        res = encode_ladder(Video(src, video.fps), outs, preset=preset, progress=False, overwrite=True)
        enc_s = time.monotonic() - t0
        for q in qs:
            r = res[q]
            dec = decode(outs[q]).frames
            up = dec if scale == 1 else resize(dec, (h, w), "bicubic")
            rec = {"clip": Path(clip).name, "frames": n, "scale": scale, "preset": preset, "q": q,
                   "source": f"{w}x{h}", "internal": f"{small_hw[1]}x{small_hw[0]}", "bytes": r.num_bytes,
                   "bpp": 8.0 * r.num_bytes / (h * w * n),
                   "psnr": psnr_of_mse(frame_mse(up, full)), "psnr_internal": r.psnr,
                   "steps": r.steps, "encode_s": round(enc_s, 1),
                   "machine": f"{platform.node()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"}
            print(json.dumps(rec), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
