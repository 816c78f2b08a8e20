"""One fit (metanerv.fit) behind both entry points: the encoder's GOP fit (codec.finetune) and
meta-training's coded inner loop (metanerv.maml.coded_adapt) give the same result on one task,
so an improvement of the fit reaches both and they cannot drift apart."""
from __future__ import annotations

import pathlib
import re

import pytest
import torch
from torch.func import functional_call

from codec import finetune
from metanerv import maml
from metanerv.fit import FitSettings
from metanerv.losses import reconstruction_loss
from metanerv.model import NeRVConfig, build_model, decode_param_names, frame_times

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("lr_scales", [None, "half_the_first"])
def test_encoder_fit_and_coded_adapt_are_one_fit(one_thread, lr_scales):
    config = NeRVConfig(pe_freqs=4, embed_dim=16, grid_channels=4, grid_anchors=2, channels=(8, 6), strides=(2, 2))
    model = build_model(config, (4, 4), seed=1)
    names = decode_param_names(model)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    frames = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    scales = {names[0]: 0.5} if lr_scales else None
    # "ssim" with every frame in each step: a distortion with no state, which both can express
    # (lam 0.1: since a 60-step fit starts its steps 8x coarser, metanerv.fit.start_step_factor,
    # nothing on this toy moves at 0.5)
    s = FitSettings(steps=60, lr=1e-2, batch=None, lam=0.1, seed=4, distortion="ssim", lr_scales=scales)
    pixels = 3 * 16 * 16

    base = {k: start[k] for k in names}  # delta coding from the model's own weights: r starts at 0
    state = finetune.start_fit(model, base, s)
    finetune.run_fit(model, frames, base, state, s, s.steps, pixels, progress=False)
    with torch.no_grad():
        encoder = state.rate.unflatten(state.rate.quantize_flat(state.resid)[0])

    def loss_fn(params, k):
        pred = functional_call(model, params, (frame_times(torch.arange(3), 3),))
        return reconstruction_loss(pred, frames, s.l1_weight, fused=True)

    meta = maml.coded_adapt(loss_fn, start, names, s.steps, s.lr, s.lam, pixels, lr_scales=scales, seed=s.seed,
                              coarse_start=True)
    assert list(meta) == list(encoder) == names
    for k in names:
        assert torch.equal(meta[k], encoder[k]), k
    assert sum(int((m != 0).sum()) for m in meta.values()) > 0  # it moved


def test_one_warmup_stable_decay_formula():
    """The schedule is written once (metanerv.schedule.wsd_lr) and only metanerv.fit turns a
    fit's settings into its warmup and decay: no other module computes or calls it."""
    def files(pattern):
        return sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")
                      if not {"results", "tests"} & set(p.parts) and re.search(pattern, p.read_text()))
    assert files(r"warmup=|/ *warmup\b") == ["metanerv/fit.py", "metanerv/schedule.py"]
    assert files(r"\bwsd_lr\(") == ["metanerv/fit.py", "metanerv/schedule.py"]
