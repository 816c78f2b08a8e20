"""The fit's distortion (``nervc encode --tune``): "psnr" prices the MSE per dB, "ssim" is the
NeRV papers' 0.7 L1 + 0.3 (1 - SSIM), "balanced" (the default) half of each; every tune reaches
the bitstream the same way."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec import finetune
from metanerv import fit
from codec.cli import main as cli_main
from codec.encoder import encode_ladder
from codec.metrics import rgb_psnr
from codec.decoder import decode
from metanerv.init_file import DEFAULT_INIT, load_init
from metanerv.model import build_model, grid_size_for, init_state_for
from nervcore.errors import NervcError
from nervcore.video_io import Video


def _state(tune: str):
    init = load_init(DEFAULT_INIT)
    ghw = grid_size_for(16, 16, init.config)
    model = build_model(init.config, ghw, init.state)
    s = finetune.FitSettings(steps=4, lr=2e-2, batch=8, distortion=tune)
    return finetune.start_fit(model, init_state_for(init.state, ghw), s), s


def test_psnr_distortion_is_the_gradient_of_a_log_mse():
    """First step: the running mean is the batch's MSE, so the term is MSE_PRICE and its
    gradient MSE_PRICE * d ln(MSE); later steps divide by the running mean, not the batch's."""
    state, s = _state("psnr")
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=g)
    pred = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=g, requires_grad=True)
    d = state.distortion(pred, target, s)
    assert d.item() == pytest.approx(fit.MSE_PRICE)
    got, = torch.autograd.grad(d, pred)
    want, = torch.autograd.grad(fit.MSE_PRICE * torch.log((pred - target).square().mean()), pred)
    assert torch.allclose(got, want)
    first = (pred - target).square().mean().item()
    closer = (target + 0.1 * (pred.detach() - target)).requires_grad_(True)  # 1 % of the MSE
    d2 = state.distortion(closer, target, s)
    mean = fit.MSE_MEAN_DECAY * first + (1 - fit.MSE_MEAN_DECAY) * 0.01 * first
    assert state.mse_mean.item() == pytest.approx(mean)
    assert d2.item() == pytest.approx(fit.MSE_PRICE * 0.01 * first / mean)
    assert not state.mse_mean.requires_grad


def test_ssim_distortion_is_the_reconstruction_loss():
    from metanerv.losses import reconstruction_loss
    state, s = _state("ssim")
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert state.distortion(x, y, s).item() == pytest.approx(reconstruction_loss(x, y, 0.7).item(), rel=1e-5)
    assert state.mse_mean is None


def test_balanced_distortion_is_half_of_each():
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    got = {}
    for tune in ("balanced", "psnr", "ssim"):
        state, s = _state(tune)
        got[tune] = state.distortion(x, y, s).item()
    assert finetune.DEFAULT_TUNE == "balanced" and fit.MSE_SHARE["balanced"] == 0.5
    assert got["balanced"] == pytest.approx(0.5 * got["psnr"] + 0.5 * got["ssim"], rel=1e-5)
    assert got["psnr"] == pytest.approx(fit.MSE_PRICE)  # first step: the batch is the mean


def test_unknown_distortion_is_refused():
    with pytest.raises(ValueError, match="distortion"):
        _state("vmaf")


def _clip(n=6, h=32, w=48) -> Video:
    from fractions import Fraction
    t = np.linspace(0, 1, n)[:, None, None, None]
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 5.0)], -1)[None]
    frames = np.clip(255 * (0.6 * base + 0.4 * np.roll(base, 3, axis=2) * t), 0, 255).astype(np.uint8)
    return Video(np.repeat(frames, 1, 0), Fraction(25))


@pytest.mark.parametrize("tune", finetune.DISTORTIONS)
def test_either_tune_writes_a_stream_whose_decode_the_encoder_measured(tmp_path, tune):
    video = _clip()
    out = tmp_path / f"{tune}.nerv"
    r = encode_ladder(video, {5: out}, steps=30, progress=False, tune=tune, scale=1)[5]
    dec = decode(out).frames
    assert r.psnr == pytest.approx(rgb_psnr(dec, video.frames), abs=1e-6)
    assert r.num_bytes == out.stat().st_size


def test_psnr_tune_fits_the_clip_and_differs_from_ssim(tmp_path):
    """With no rate weight (--lam 0) the psnr-tuned fit raises the PSNR well above the init's
    picture, and it is not the ssim-tuned stream. (Which tune wins at equal bytes is the
    benchmark's question, benchmarks/results/fit-loss/, not a toy clip's.)"""
    video = _clip()
    got = {}
    for tune in finetune.DISTORTIONS:
        for steps in (0, 40):
            out = tmp_path / f"{tune}{steps}.nerv"
            got[tune, steps] = (encode_ladder(video, {7: out}, steps=steps, lam=0.0, progress=False, tune=tune,
                                              scale=1)[7].psnr, out.read_bytes())
    assert got["psnr", 40][1] != got["ssim", 40][1]
    assert got["psnr", 40][0] > got["psnr", 0][0] + 3.0


def test_cli_refuses_an_unknown_tune(tmp_path, capsys):
    with pytest.raises(NervcError, match="--tune"):
        from codec.cli import encode_main
        encode_main(["in.mp4", str(tmp_path / "o.nerv"), "--tune", "vmaf"])
    assert not (tmp_path / "o.nerv").exists()
    assert math.isfinite(fit.MSE_PRICE)


def test_encoder_api_refuses_an_unknown_tune(tmp_path):
    with pytest.raises(NervcError, match="--tune"):
        encode_ladder(_clip(), {5: tmp_path / "o.nerv"}, steps=1, progress=False, tune="vmaf")
    assert not (tmp_path / "o.nerv").exists()


def test_cli_reports_the_tune_it_fitted(tmp_path, capsys):
    from codec.cli import encode_main
    from nervcore.video_io import write_video
    video = _clip()
    src = tmp_path / "in.mkv"
    write_video(src, video.frames, video.fps, video.frames.shape[2], video.frames.shape[1])
    assert encode_main([str(src), str(tmp_path / "o.nerv"), "--steps", "2", "--tune", "psnr", "--quiet"]) == 0
    assert "--tune psnr" in capsys.readouterr().out
