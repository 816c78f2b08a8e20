"""What a fitting step costs per --tune (codec.presets.TUNE_STEP_COST): batch-2 steps of
codec.finetune.run_fit at three frame sizes, the three tunes interleaved in one process, median
process CPU of 12 steps each, one thread.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/results/tune-cost/step_cost.py

2026-11-28 ~20:30 UTC, AMD EPYC VM beside a two-process meta-training run (ratios only):
176x144 psnr/balanced 0.750, ssim/balanced 0.971; 352x288 0.763, 1.043; 208x128 0.821, 0.970.
"""
import statistics
import time

import torch

from codec.finetune import FitSettings, run_fit, start_fit
from codec.inits import resolve_init
from metanerv.model import build_model, grid_size_for, init_state_for
torch.set_num_threads(1)
init = resolve_init("default"); cfg = init.config
res = {}
for (w, h) in [(176, 144), (352, 288), (208, 128)]:
    gh, gw = grid_size_for(h, w, cfg); hp, wp = gh*cfg.total_stride, gw*cfg.total_stride
    frames = torch.rand(16, 3, hp, wp, generator=torch.Generator().manual_seed(0))
    fits = {}
    for tune in ("ssim", "balanced", "psnr"):
        model = build_model(cfg, (gh, gw), init.state, seed=0); base = init_state_for(init.state, (gh, gw))
        s = FitSettings(steps=10_000, batch=2, distortion=tune); st = start_fit(model, base, s)
        run_fit(model, frames, base, st, s, 1, 16*w*h, progress=False)
        fits[tune] = (model, base, s, st)
    times = {t: [] for t in fits}
    for r in range(12):
        for t, (model, base, s, st) in fits.items():
            t0 = time.process_time(); run_fit(model, frames, base, st, s, st.step + 1, 16*w*h, progress=False)
            times[t].append(time.process_time() - t0)
    m = {t: statistics.median(v) for t, v in times.items()}
    print(w, h, {t: round(v*1e3, 1) for t, v in m.items()}, "psnr/balanced", round(m["psnr"]/m["balanced"], 3), "ssim/balanced", round(m["ssim"]/m["balanced"], 3), flush=True)
