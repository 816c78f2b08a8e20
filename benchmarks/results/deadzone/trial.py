"""Would a dead zone in the final rounding buy rate cheaper than the ladder does?

`nervc encode` with the encoder's final rounding observed: when a fit ends, its residuals are
rounded with a dead zone ``theta`` (``k = sign(x) floor(|x| + 1/2 - theta)``, x in steps: theta = 0
is the encoder's round-to-nearest) for several theta, and for each the levels' code length
(``RateModel.coded_bits``: each tensor at its best Laplace scale, what the file holds) and the
PSNR of the whole GOP drawn with those weights at the coded size are printed, one JSON line
per (fit, theta). The file written is the encoder's own (theta = 0).

    PYTHONPATH=. python benchmarks/results/deadzone/trial.py encode IN OUT.nerv [nervc encode options]
"""
from __future__ import annotations

import json
import os
import sys

import torch

import codec.encoder as encoder
from benchmarks.trials import gop_psnr
from codec.cli import main

THETAS = [float(t) for t in os.environ.get("THETAS", "0,0.05,0.1,0.15,0.2,0.3").split(",")]
_run_fit, _finish_fit = encoder.run_fit, encoder.finish_fit
_last: dict[int, tuple] = {}


def observed_run_fit(model, frames, base, state, s, until, pixels, *args, **kw):
    _last[id(state)] = (model, frames, base, pixels)
    return _run_fit(model, frames, base, state, s, until, pixels, *args, **kw)


def observed_finish_fit(state):
    model, frames, base, pixels = _last[id(state)]
    rate = state.rate
    st = torch.tensor([float(torch.tensor(rate.step_value(k)).half()) for k in rate.names])
    steps = st.index_select(0, rate.segment)
    x = state.resid.detach().float().cpu() / steps
    for theta in THETAS:
        lv = torch.sign(x) * torch.clamp(torch.floor(x.abs() + 0.5 - theta), min=0)
        bits = float(rate.coded_bits(lv))
        q = rate.unflatten(lv * steps)
        w = {k: (base[k].cpu() + q[k] if base is not None else q[k]) for k in rate.names}
        print(json.dumps({"lam": state.lam, "theta": theta, "bits": round(bits), "bpp": bits / pixels,
                          "gop_psnr": round(gop_psnr(model, frames, w), 4),
                          "nonzero": int((lv != 0).sum())}), flush=True)
    return _finish_fit(state)


encoder.run_fit = observed_run_fit
encoder.finish_fit = observed_finish_fit

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
