"""Meta-SGD step sizes in the encoder's fit (issue 13, item 2): an init's learned per-tensor
step sizes multiply every Adam update of that tensor, unless --no-meta-lr."""
from __future__ import annotations

import math

import pytest
import torch

import codec
from codec.cli import main as cli_main
from codec.finetune import FitSettings, run_fit, start_fit
from metanerv.init_file import DEFAULT_INIT, load_init, save_init
from metanerv.model import build_model, decode_param_names, grid_size_for, init_state_for
from nervcore.video_io import read_video
from tests.conftest import DATA


def _one_step(scales):
    init = load_init(DEFAULT_INIT)
    ghw = grid_size_for(32, 48, init.config)
    frames = torch.rand(4, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    model = build_model(init.config, ghw, init.state)
    base = init_state_for(init.state, ghw)
    s = FitSettings(steps=10, lr=2e-2, lam=0.3, batch=2, lr_scales=scales)
    state = start_fit(model, base, s)
    run_fit(model, frames, base, state, s, 1, 4 * 32 * 48, progress=False)
    return state.residuals()


def test_each_tensor_moves_by_its_step_size_times_the_plain_update():
    plain = _one_step(None)
    names = list(plain)
    scales = {n: 0.1 * (i + 1) for i, n in enumerate(names)}
    scaled = _one_step(scales)
    for n in names:
        assert plain[n].abs().max() > 0
        assert torch.allclose(scaled[n], scales[n] * plain[n], rtol=1e-5, atol=1e-9), n


@pytest.fixture(scope="module")
def inits(tmp_path_factory):
    d = tmp_path_factory.mktemp("inits")
    init = load_init(DEFAULT_INIT)
    names = decode_param_names(build_model(init.config, (2, 2)))
    flat, skewed = d / "flat.safetensors", d / "skewed.safetensors"
    save_init(flat, init.config, init.state, metasgd={"log_lrs": {n: math.log(5e-3) for n in names}})
    logs = {n: math.log(5e-3) + (1.5 if "grid" in n else -0.5) for n in names}
    save_init(skewed, init.config, init.state, metasgd={"log_lrs": logs})
    return flat, skewed


def test_the_encoder_fits_with_the_init_step_sizes(tmp_path, inits):
    flat, skewed = inits
    clip = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 6))
    kw = dict(steps=4, batch=2, progress=False)
    out = {}
    for name, init, meta in (("plain", "default", False), ("default", "default", True), ("flat", flat, True),
                             ("skewed", skewed, True), ("skewed-off", skewed, False)):
        codec.encode(clip, tmp_path / f"{name}.nerv", init=init, meta_lr=meta, **kw)
        out[name] = (tmp_path / f"{name}.nerv").read_bytes()
    assert out["flat"] == out["plain"]  # equal step sizes normalise to 1: plain Adam
    assert out["skewed"] != out["plain"]
    assert out["skewed-off"] == out["plain"]  # same digest: the step sizes are not in the stream
    assert load_init(DEFAULT_INIT).metasgd is not None  # the shipped init carries step sizes ...
    assert out["default"] != out["plain"]  # ... and the encoder uses them unless told not to


def test_cli_no_meta_lr(tmp_path, inits):
    clip = DATA / "fixtures" / "bus_qcif_30f.264"
    args = ["encode", str(clip), None, "--init", str(inits[1]), "--frames", "0:4", "--steps", "3", "--quiet"]
    a, b = tmp_path / "a.nerv", tmp_path / "b.nerv"
    assert cli_main([*(str(a) if x is None else x for x in args)]) == 0
    assert cli_main([*(str(b) if x is None else x for x in args), "--no-meta-lr"]) == 0
    assert a.read_bytes() != b.read_bytes()
