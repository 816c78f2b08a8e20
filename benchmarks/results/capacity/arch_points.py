"""Architecture candidates for a cheaper decode, from random weights at lam = 0 (no init exists
for them): PSNR after N steps of the encoder's fit on a clip, and decode fps at CIF.

    python benchmarks/results/capacity/arch_points.py NAME CLIP FRAMES STEPS OUT.jsonl

NAME: base (32,24,16,12 channels, 3x3 convs), c8 (last block 8 channels), k1 (last block's
conv 1x1), k1c8 (both). The 1x1 variant patches NeRVBlock for the prototype only.
"""
import json
import sys
import time

import numpy as np
import torch
from torch import nn

import metanerv.model as M
from benchmarks.adaptation import adapt_psnr
from nervcore.video_io import read_video

name, clip, nf, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
channels = (32, 24, 16, 8) if "c8" in name else (32, 24, 16, 12)
kernels = (3, 3, 3, 1) if "k1" in name else (3, 3, 3, 3)
_init = M.NeRVBlock.__init__
_made = [0]


def patched(self, c_in, c_out, stride, embed_dim):
    _init(self, c_in, c_out, stride, embed_dim)
    k = kernels[_made[0] % len(kernels)]
    _made[0] += 1
    if k != 3:
        self.conv = nn.Conv2d(c_in, c_out * stride * stride, k, padding=k // 2)


M.NeRVBlock.__init__ = patched
cfg = M.NeRVConfig(channels=channels)
torch.set_num_threads(1)
v = read_video(clip, frames=slice(0, nf))
t0 = time.time()
db = adapt_psnr(v.frames, cfg, None, steps, lam=0.0)
fit_s = time.time() - t0
model = M.build_model(cfg, M.grid_size_for(288, 352, cfg)).eval()
weights = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux"))
tt = M.frame_times(list(range(16)), 16)
model.render(tt[:4])
best = 1e9
for _ in range(3):
    w0 = time.perf_counter()
    model.render(tt)
    best = min(best, time.perf_counter() - w0)
rec = dict(arch=name, channels=channels, kernels=kernels, clip=clip.split("/")[-1], frames=nf, steps=steps,
           lam=0.0, psnr=db, fit_seconds=fit_s, cif_decode_fps_1thread=16 / best, cif_weights=weights)
print(json.dumps(rec), flush=True)
with open(out, "a") as f:
    f.write(json.dumps(rec) + "\n")
