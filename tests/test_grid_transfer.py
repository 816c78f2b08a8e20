"""Grid-transfer measurement: the grid variants, a tiny end-to-end run, and that the held-out
folder is refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import grid_transfer
from metanerv.init_file import save_init
from metanerv.model import build_model, init_state_for
from metanerv.train import tiny_config

from tests.conftest import DATA, link_fixture_clips

pytestmark = pytest.mark.usefixtures("one_thread")


def test_grid_variants():
    cfg = tiny_config()
    grid = build_model(cfg, (3, 4), seed=1).grid.detach()
    grid = grid + torch.arange(cfg.grid_channels).view(1, -1, 1, 1)  # distinct channel means
    hw = (5, 7)
    mean = grid_transfer.grid_variant("mean", grid, cfg, hw, 0)
    assert mean.shape == (cfg.grid_anchors, cfg.grid_channels, 5, 7)
    assert torch.allclose(mean, mean[..., :1, :1].expand_as(mean))  # spatially constant
    assert torch.allclose(mean[..., 0, 0], grid.mean(dim=(2, 3)))
    rand = grid_transfer.grid_variant("random", grid, cfg, hw, 0)
    assert torch.equal(rand, build_model(cfg, hw, seed=0).grid.detach())
    noise = grid_transfer.grid_variant("noise", grid, cfg, hw, 0)
    assert noise.shape == mean.shape and not torch.allclose(noise, mean)
    same = grid_transfer.grid_variant("resampled", grid, cfg, hw, 0)
    # 'resampled' is the stored grid; build_model resamples it as the encoder does
    assert torch.equal(init_state_for({"grid": same}, hw)["grid"], init_state_for({"grid": grid}, hw)["grid"])


def test_tiny_run(tmp_path):
    clips = link_fixture_clips(tmp_path, ("bus_qcif_30f.264", "desk_320x240_36f.mp4"))
    init = tmp_path / "tiny.safetensors"
    save_init(init, tiny_config(), build_model(tiny_config(), (2, 2), seed=0).state_dict())
    out = tmp_path / "gt.json"
    rc = grid_transfer.main(["--init", str(init), "--data", str(clips), "--clips",
                             "bus_qcif_30f.264,desk_320x240_36f.mp4", "--frames", "2", "--scale", "4",
                             "--steps", "0,1", "--batch", "2", "--out-json", str(out), "--quiet"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["mean_psnr"]) == {"resampled", "mean", "random"}
    bus = res["clips"]["bus_qcif_30f.264"]
    assert (bus["width"], bus["height"], bus["grid_hw"]) == (44, 36, [3, 3])
    for c in res["clips"].values():
        for curve in c["psnr"].values():
            assert set(curve) == {"0", "1"} and all(5 < v < 60 for v in curve.values())


def test_refuses_the_held_out_folder(tmp_path):
    held_out = DATA / "bench"
    with pytest.raises(SystemExit, match="held-out"):
        grid_transfer.main(["--data", str(held_out), "--clips", "carphone_qcif_120f.mp4",
                            "--out-json", str(tmp_path / "x.json")])
    link = tmp_path / "sneaky"
    link.symlink_to(held_out)
    with pytest.raises(SystemExit, match="held-out"):
        grid_transfer.main(["--data", str(link), "--clips", "carphone_qcif_120f.mp4",
                            "--out-json", str(tmp_path / "x.json")])
