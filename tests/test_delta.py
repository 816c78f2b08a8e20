"""Delta coding against an init: chosen per tensor, pruned entries fall back to the init."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import codec
from bitstreams import BitstreamReader
from codec.cli import main
from codec.decoder import reconstruct_weights
from metanerv.init_file import load_init, save_init
from metanerv.model import NeRVConfig, build_model, init_state_for
from nervcore.video_io import read_video
from tests.conftest import DATA


@pytest.fixture(scope="module")
def init_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("init") / "tiny.safetensors"
    save_init(path, NeRVConfig(), build_model(NeRVConfig(), (3, 4), seed=7).state_dict(), {"why": "test"})
    return path


@pytest.fixture(scope="module")
def clip():
    return read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 6))


def test_unchanged_init_codes_as_all_delta_and_decodes_to_the_init(tmp_path, init_path, clip):
    out = tmp_path / "d.nerv"
    codec.encode(clip, out, steps=0, init=str(init_path), progress=False)
    reader = BitstreamReader(out)
    gop = reader.read_gop(0)
    init = init_state_for(load_init(init_path).state, reader.header.grid_hw)
    # residual 0: delta is far cheaper, except where the init is itself zero (FiLM starts at 0)
    assert all(t.mode == 1 for (n, _), t in zip(reader.shapes, gop.tensors) if init[n].abs().max() > 0)
    weights = reconstruct_weights(reader, gop, init)
    assert all(torch.equal(weights[k], init[k]) for k in weights)
    assert reader.header.init_digest == load_init(init_path).digest


def test_delta_stream_needs_its_init(tmp_path, init_path, clip, capsys):
    out = tmp_path / "n.nerv"
    codec.encode(clip, out, steps=3, init=str(init_path), progress=False)
    assert main(["decode", str(out), str(tmp_path / "n.mkv"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert load_init(init_path).digest.hex()[:16] in err and not (tmp_path / "n.mkv").exists()
    assert main(["decode", str(out), str(tmp_path / "n.mkv"), "--quiet", "--init", str(init_path)]) == 0


def test_pruned_delta_entries_return_to_the_init(tmp_path, init_path, clip):
    out = tmp_path / "p.nerv"
    codec.encode(clip, out, steps=5, prune=0.9, bits=8, init=str(init_path), progress=False)
    reader = BitstreamReader(out)
    gop = reader.read_gop(0)
    init = init_state_for(load_init(init_path).state, reader.header.grid_hw)
    weights = reconstruct_weights(reader, gop, init)
    delta = [(weights[n] == init[n]).float().mean().item()
             for (n, _), t in zip(reader.shapes, gop.tensors) if t.mode == 1]
    assert delta and float(np.mean(delta)) > 0.5
