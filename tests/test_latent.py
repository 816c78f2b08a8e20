"""The latent encoder (metanerv.latent): anchors as the model reads them, a start that changes
nothing until trained, files without pickle, and the encoder's use of it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from metanerv.init_file import DEFAULT_INIT, load_init
from metanerv.latent import (LatentEncoder, fit_anchors, interpolation_matrix, load_latent_encoder,
                             save_latent_encoder, start_grid)
from metanerv.latent_train import train
from metanerv.model import NeRV, NeRVConfig, frame_times
from nervcore.errors import NervcError
from tests.conftest import DATA


@pytest.mark.parametrize("anchors,frames", [(1, 5), (2, 7), (4, 32), (16, 32), (7, 3)])
def test_interpolation_matrix_is_how_the_model_reads_its_grid(anchors, frames):
    cfg = NeRVConfig(grid_anchors=anchors, channels=(8, 4), strides=(2, 2))
    torch.manual_seed(0)
    model = NeRV(cfg, (3, 5))
    t = frame_times(range(frames), frames)
    want = model._grid_at(t)
    got = (interpolation_matrix(t, anchors) @ model.grid.detach().flatten(1)).view_as(want)
    torch.testing.assert_close(got, want.detach(), rtol=0, atol=1e-6)


def test_fit_anchors_recovers_anchors_the_frames_pin_down():
    torch.manual_seed(1)
    anchors = torch.randn(4, 3, 2, 2)
    t = frame_times(range(10), 10)
    per_frame = (interpolation_matrix(t, 4) @ anchors.flatten(1)).view(10, 3, 2, 2)
    got = fit_anchors(per_frame, t, torch.zeros_like(anchors), ridge=1e-6)
    torch.testing.assert_close(got, anchors, rtol=0, atol=1e-4)


def test_an_untrained_encoder_proposes_the_init_grid():
    """The projection starts at zero: until trained the encode is the init's."""
    torch.manual_seed(2)
    enc = LatentEncoder(grid_channels=6, stride=4, width=8)
    init_grid = torch.randn(7, 6, 3, 5)
    frames = torch.rand(9, 3, 12, 20)
    got = start_grid(enc, frames, frame_times(range(9), 9), init_grid)
    torch.testing.assert_close(got, init_grid, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An encoder trained for 40 steps on two fixture clips, and the per-step leads it reported."""
    tmp = tmp_path_factory.mktemp("latent")
    data = tmp / "clips"
    data.mkdir()
    for name in ("bus_qcif_30f.264", "desk_320x240_36f.mp4"):
        (data / name).symlink_to(DATA / "fixtures" / name)
    out = tmp / "e.latent.safetensors"
    leads = train(str(data), str(out), str(DEFAULT_INIT), steps=40, width=16, split="all", log_every=0,
                  save_every=40)
    return out, leads


def test_a_trained_encoder_moves_the_grid_towards_the_frames(trained):
    """The proposed start draws the training tasks better than the init's grid, and more so at
    the end of the training than at its start (a lead the trainer measures on each task)."""
    out, leads = trained
    assert np.mean(leads[-15:]) > np.mean(leads[:5]) + 0.5
    assert np.mean(leads[-15:]) > 0.5
    enc, digest = load_latent_encoder(out)
    assert digest == load_init(DEFAULT_INIT).digest.hex()
    assert enc.embed.out_channels == 16


def test_files_round_trip_and_are_found_by_init_digest(tmp_path):
    torch.manual_seed(3)
    enc = LatentEncoder(grid_channels=6, stride=4, width=8)
    torch.nn.init.normal_(enc.out.weight)
    save_latent_encoder(enc, tmp_path / "x.latent.safetensors", b"\x01" * 32)
    back, digest = load_latent_encoder(tmp_path / "x.latent.safetensors")
    assert digest == (b"\x01" * 32).hex()
    frames = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(back(frames), enc(frames))
    raw = (tmp_path / "x.latent.safetensors").read_bytes()
    assert b"pickle" not in raw and not raw.startswith(b"\x80")  # safetensors, not a pickle


def test_a_broken_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.latent.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(NervcError, match="latent encoder"):
        load_latent_encoder(bad)


def test_encode_starts_from_the_proposal_only_when_asked(trained, tmp_path):
    """``--latent-encoder`` changes where the grid starts (other bytes, same shape decoded);
    an encoder made for another init is one clear error before any fitting."""
    from fractions import Fraction

    from codec.cli import main
    from codec.decoder import decode
    from nervcore.video_io import write_video
    clip = tmp_path / "c.y4m"
    base = np.random.default_rng(0).integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)
    write_video(clip, [np.roll(base[0], 2 * i, axis=1) for i in range(6)], Fraction(25), 64, 48)
    outs = {}
    for tag, extra in (("lat", ["--latent-encoder", str(trained[0])]), ("init", [])):
        out = tmp_path / f"{tag}.nerv"
        assert main(["encode", str(clip), str(out), "--steps", "5", "--quiet", *extra]) == 0
        outs[tag] = out.read_bytes()
        assert decode(out).frames.shape == (6, 48, 64, 3)
    assert outs["lat"] != outs["init"]
    other = tmp_path / "other.latent.safetensors"
    save_latent_encoder(LatentEncoder(16, 16, 8), other, b"\x07" * 32)
    assert main(["encode", str(clip), str(tmp_path / "x.nerv"), "--steps", "5", "--quiet",
                 "--latent-encoder", str(other)]) != 0
    assert not (tmp_path / "x.nerv").exists()
