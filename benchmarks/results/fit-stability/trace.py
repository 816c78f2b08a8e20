"""`nervc encode` with the fit traced: every CHUNK steps, the PSNR of the whole GOP drawn with
the quantized weights (what the decoder would get at that step, at the coded size), the coded
rate and the PSNR term's running mean, one JSON line each.

    BETA2=0.999 GUARD=1 PYTHONPATH=. python benchmarks/results/fit-stability/trace.py encode IN OUT.nerv [nervc encode options]

BETA2 sets Adam's second-moment decay (default: the encoder's); GUARD=0 turns the divergence
guard off. Splitting the fit into chunks does not change it (codec.finetune.run_fit runs in
pieces as in one).
"""
from __future__ import annotations

import json
import math
import os
import sys

import codec.encoder as encoder
import codec.finetune as finetune
from benchmarks.trials import gop_psnr
from codec.cli import main

CHUNK = int(os.environ.get("CHUNK", 50))
if "BETA2" in os.environ:
    finetune.ADAM_BETAS = (0.9, float(os.environ["BETA2"]))
if os.environ.get("GUARD", "1") == "0":
    finetune.GUARD_DB = math.inf
_run_fit = finetune.run_fit


def _gop_psnr(model, frames, base, state) -> float:
    rate = state.rate
    q, _ = rate.quantize_flat(state.resid.detach())
    w = rate.unflatten(rate.flatten({k: base[k] for k in rate.names}) + q if base is not None else q)
    return gop_psnr(model, frames, w)


def traced(model, frames, base, state, s, until, pixels, progress=True, desc="fit", stats_every=10):
    while state.step < until:
        _run_fit(model, frames, base, state, s, min(until, (state.step // CHUNK + 1) * CHUNK), pixels,
                 False, desc, stats_every)
        bits = float(state.rate.coded_bits(state.rate.levels_flat(state.resid)))
        print(json.dumps({"step": state.step, "of": s.steps, "lam": state.lam,
                          "gop_psnr": round(_gop_psnr(model, frames, base, state), 3),
                          "coded_bpp": round(bits / pixels, 5), "rollbacks": state.rollbacks,
                          "lr_mult": state.lr_mult}), flush=True)
    return state


finetune.run_fit = encoder.run_fit = traced

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
