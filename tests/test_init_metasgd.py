"""Init files carrying learned Meta-SGD step sizes: round trip, unchanged identity, hostile
metadata, and the learning-rate multipliers an encoder would use."""
from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nervcore.errors import NervcError
from metanerv.init_file import init_digest, load_init, lr_scales, save_init
from metanerv.model import NeRVConfig, build_model, decode_param_names

CFG = NeRVConfig(pe_freqs=4, embed_dim=8, grid_channels=4, grid_anchors=2, channels=(6, 4),
                 strides=(2, 2))


@pytest.fixture()
def state():
    return {k: v.detach() for k, v in build_model(CFG, (2, 3), seed=0).state_dict().items()}


def _logs(state, base=math.log(5e-3)):
    return {n: torch.tensor(base + 0.1 * i) for i, n in enumerate(state)}


def test_round_trip_keeps_the_id_of_the_weights(state, tmp_path):
    plain, carried = tmp_path / "plain.safetensors", tmp_path / "metasgd.safetensors"
    d0 = save_init(plain, CFG, state)
    d1 = save_init(carried, CFG, state, {"algorithm": "metasgd"},
                   metasgd={"log_lrs": _logs(state), "inner_opt": "sgd", "inner_steps": 8})
    assert d0 == d1 == init_digest(CFG, state)  # the digest is the weights' only
    a, b = load_init(plain), load_init(carried)
    assert a.metasgd is None and lr_scales(a) is None
    assert b.digest == a.digest and set(b.state) == set(state)  # no extra tensors
    assert b.metasgd["inner_opt"] == "sgd" and b.metasgd["inner_steps"] == 8
    for i, n in enumerate(state):
        assert b.metasgd["log_lrs"][n] == pytest.approx(math.log(5e-3) + 0.1 * i, abs=1e-6)
    # a reader that knows nothing of Meta-SGD sees exactly the plain file's tensors
    assert set(load_file(str(carried))) == set(load_file(str(plain)))
    build_model(CFG, (3, 3), b.state)  # strict load still works


def test_lr_scales(state, tmp_path):
    p = tmp_path / "i.safetensors"
    logs = _logs(state)
    save_init(p, CFG, state, metasgd={"log_lrs": logs})
    init = load_init(p)
    scales = lr_scales(init)
    names = decode_param_names(build_model(CFG, (1, 1)))
    assert list(scales) == names  # decode tensors only (the aux heads are never fine-tuned)
    assert math.exp(sum(math.log(s) for s in scales.values()) / len(scales)) == pytest.approx(1.0)
    a, b = names[0], names[-1]
    assert scales[b] / scales[a] == pytest.approx(math.exp(float(logs[b] - logs[a])), rel=1e-5)
    clamped = lr_scales(init, clamp=(0.9, 1.1))
    assert all(0.9 <= s <= 1.1 for s in clamped.values())
    # a tensor without a learned value gets the mean step size
    partial = {n: v for n, v in logs.items() if n != "grid"}
    save_init(p, CFG, state, metasgd={"log_lrs": partial})
    assert lr_scales(load_init(p))["grid"] == 1.0


def test_save_refuses_bad_step_sizes(state, tmp_path):
    p = tmp_path / "i.safetensors"
    with pytest.raises(ValueError):
        save_init(p, CFG, state, metasgd={"log_lrs": {"grid": torch.zeros(2)}})
    with pytest.raises(NervcError):
        save_init(p, CFG, state, metasgd={"log_lrs": {"nope": torch.tensor(0.0)}})
    with pytest.raises(NervcError):
        save_init(p, CFG, state, metasgd={"log_lrs": {"grid": torch.tensor(float("nan"))}})


@pytest.mark.parametrize("bad", [
    "not json", "[1, 2]", '{"version": 2, "granularity": "tensor", "log_lrs": {"grid": 0}}',
    '{"version": 1, "granularity": "element", "log_lrs": {"grid": 0}}',
    '{"version": 1, "granularity": "tensor", "log_lrs": {}}',
    '{"version": 1, "granularity": "tensor", "log_lrs": {"blocks.9.conv.weight": 0}}',
    '{"version": 1, "granularity": "tensor", "log_lrs": {"grid": NaN}}',
    '{"version": 1, "granularity": "tensor", "log_lrs": {"grid": 1e308}}',
    '{"version": 1, "granularity": "tensor", "log_lrs": {"grid": "fast"}}',
    '{"version": 1, "granularity": "tensor", "log_lrs": {"grid": true}}',
])
def test_hostile_metadata_is_a_clean_error(state, tmp_path, bad):
    good = tmp_path / "good.safetensors"
    save_init(good, CFG, state)
    with safe_open(str(good), framework="pt") as f:
        meta = dict(f.metadata())
    meta["metasgd"] = bad
    p = tmp_path / "bad.safetensors"
    save_file(load_file(str(good)), str(p), metadata=meta)
    with pytest.raises(NervcError, match="bad.safetensors"):
        load_init(p)
