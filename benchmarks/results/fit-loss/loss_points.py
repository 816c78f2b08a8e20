"""Which distortion should the encoder's fit minimise when users judge it by PSNR?

One train clip (box-reduced by SRC), `--scale auto`, one ladder of rungs, with the fit's
distortion replaced by VARIANT:

- ``l1ssim``: the shipped 0.7 L1 + 0.3 (1 - SSIM);
- ``l1``: L1 alone;
- ``mixA``: A * mse0.04 + (1 - A) * l1ssim;
- ``mseK``: K * MSE / m, where m is a running mean (detached, reset per fit) of the batches' MSE:
  the gradient of K * ln(mean MSE) over the GOP, i.e. a constant price in dB per bit, the slope
  PSNR is judged by. K sets the scale against the ladder's rate weights (the shipped loss moves
  about 0.009 per dB near 25 dB, K = 0.04 gives 0.009).

    PYTHONPATH=. python benchmarks/results/fit-loss/loss_points.py CLIP FRAMES SRC PRESET Q[,Q] VARIANT OUT.jsonl

bpp counts the written file's bytes over the source pixels; PSNR is 8-bit RGB at the source size
(mean of per-frame MSE) of what ``codec.decoder.decode`` returns; MS-SSIM is benchmarks.metrics'.
"""
from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import codec.finetune as finetune
from benchmarks.metrics import ms_ssim
from benchmarks.trials import load_clip
from codec.decoder import decode
from codec.encoder import encode_ladder, frame_mse, psnr_of_mse
from metanerv.losses import reconstruction_loss

_ref = {"m": None}


def _patch(variant: str) -> None:
    if variant == "l1ssim":
        return
    if variant == "l1":
        finetune.reconstruction_loss = lambda p, t, w, **kw: reconstruction_loss(p, t, 1.0, **kw)
        return
    if variant.startswith("mix"):  # mixA: A * mse0.04 + (1 - A) * l1ssim
        a, k = float(variant[3:]), 0.04
    elif variant.startswith("mse"):
        a, k = 1.0, float(variant[3:])
    else:
        raise SystemExit(f"unknown variant {variant}")

    def loss(p, t, w, **kw):
        mse = (p - t).square().mean()
        m = float(mse.detach())  # one host read per step: fine for a trial
        _ref["m"] = m if _ref["m"] is None else 0.95 * _ref["m"] + 0.05 * m
        out = a * k * mse / _ref["m"]
        return out if a == 1.0 else out + (1 - a) * reconstruction_loss(p, t, w, **kw)

    start = finetune.start_fit

    def start_fit(*a, **kw):
        _ref["m"] = None
        return start(*a, **kw)

    finetune.reconstruction_loss = loss
    finetune.start_fit = start_fit


def main(argv: list[str]) -> int:
    clip, n, src_scale, preset, qs, variant, out = argv[:7]
    n, src_scale = int(n), int(src_scale)
    _patch(variant)
    qs = [int(q) for q in qs.split(",")]
    video = load_clip(clip, n, src_scale)
    full = video.frames
    _, h, w, _ = full.shape
    with tempfile.TemporaryDirectory() as tmp:
        outs = {q: Path(tmp) / f"q{q}.nerv" for q in qs}
        t0 = time.monotonic()
        res = encode_ladder(video, outs, preset=preset, progress=False, overwrite=True)
        enc_s = time.monotonic() - t0
        for q in qs:
            dec = decode(outs[q]).frames
            size = outs[q].stat().st_size
            rec = {"clip": Path(clip).name, "frames": n, "src_scale": src_scale, "source": f"{w}x{h}",
                   "variant": variant, "preset": preset, "q": q, "bytes": size,
                   "bpp": 8.0 * size / (h * w * n), "psnr": psnr_of_mse(frame_mse(dec, full)),
                   "ms_ssim": ms_ssim(full, dec), "steps": res[q].steps, "encode_s": round(enc_s, 1),
                   "machine": f"{platform.node()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"}
            print(json.dumps(rec), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
