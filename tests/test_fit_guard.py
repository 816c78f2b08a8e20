"""The fit's divergence guard (metanerv.fit.GUARD_EVERY) and Adam's moment decay: a fit that
diverges returns to its last good state at half the step size; one that does not, runs as if
there were no guard."""
from __future__ import annotations

import math
import sys
from dataclasses import replace

import pytest
import torch

from codec import finetune as gop
from metanerv import fit as ft
from metanerv.init_file import DEFAULT_INIT, load_init
from metanerv.model import build_model, frame_times, grid_size_for, init_state_for
from torch.func import functional_call

PIXELS = 12 * 48 * 64


@pytest.fixture(scope="module")
def problem():
    """The shipped init's model on 12 smooth 48x64 frames (a picture it can learn)."""
    init = load_init(DEFAULT_INIT)
    ghw = grid_size_for(48, 64, init.config)
    g = torch.Generator().manual_seed(0)
    frames = torch.nn.functional.interpolate(torch.rand(12, 3, 6, 8, generator=g), size=(48, 64),
                                             mode="bilinear", align_corners=False)
    return init, ghw, init_state_for(init.state, ghw), frames


def _run(problem, s, until, state=None):
    init, ghw, base, frames = problem
    model = build_model(init.config, ghw, init.state)
    state = state or gop.start_fit(model, base, s)
    gop.run_fit(model, frames, base, state, s, until, PIXELS, progress=False)
    return model, state


def _gop_mse(problem, model, state) -> float:
    init, ghw, base, frames = problem
    rate = state.rate
    q, _ = rate.quantize_flat(state.resid.detach())
    w = rate.unflatten(rate.flatten(base) + q)
    with torch.no_grad():
        pred = functional_call(model, w, (frame_times(torch.arange(12), 12),))
    return float((pred - frames).square().mean())


def test_the_fit_uses_the_measured_adam_betas(problem, monkeypatch):
    monkeypatch.setattr(ft, "ADAM_BETAS", (0.8, 0.95))
    _, state = _run(problem, ft.FitSettings(steps=2, lr=2e-2, batch=2), 1)
    assert all(g["betas"] == (0.8, 0.95) for g in state.opt.param_groups)


def _window(state: ft.FitState, mse: float) -> None:
    """As if every batch since the last check had this MSE."""
    state.watch, state.watched = torch.tensor(mse * 5), 5


def test_guard_keeps_a_vouched_state_and_returns_to_it_when_the_fit_diverges(problem):
    _, state = _run(problem, ft.FitSettings(steps=20, lr=2e-2, batch=2, lam=0.64, distortion="ssim"), 4)
    assert state.watched == 4 and state.mse_mean is None  # watched for every tune, even where the loss ignores it
    first = float(state.watch) / 4
    s0 = state.resid.detach().clone()
    assert state.guard() is False and state.guard_last == pytest.approx(first)
    assert state.kept is None and torch.equal(state.pending["resid"], s0)  # not vouched for yet
    assert state.watch is None and state.watched == 0  # the next check sees only the batches after this one
    with torch.no_grad():
        state.resid.add_(0.01)
    s1 = state.resid.detach().clone()
    _window(state, first * 10 ** (0.5 * ft.GUARD_KEEP_DB / 10))  # within 1 dB: vouches for s0, s1 pending
    assert state.guard() is False and torch.equal(state.kept["resid"], s0) and torch.equal(state.pending["resid"], s1)
    s0_v = state.kept["opt"]["state"][0]["exp_avg_sq"].clone()
    with torch.no_grad():  # worse, but within GUARD_DB of the last window: neither kept nor rolled back
        state.resid.add_(1.0)
        state.opt.state[state.resid]["exp_avg_sq"].mul_(100.0)
    last = first * 10 ** (0.5 * ft.GUARD_KEEP_DB / 10) * 10 ** (0.5 * ft.GUARD_DB / 10)
    _window(state, last)
    assert state.guard() is False and torch.equal(state.kept["resid"], s0) and state.rollbacks == 0
    assert state.pending is None and state.guard_last == pytest.approx(last)  # the reference follows
    _window(state, last * 10 ** (1.1 * ft.GUARD_DB / 10))  # a jump: back to s0, half the step
    assert state.guard() is True
    assert torch.equal(state.resid, s0) and state.lr_mult == 0.5 and state.rollbacks == 1
    assert torch.equal(state.opt.state[state.resid]["exp_avg_sq"], s0_v)  # Adam's moments too
    assert state.guard_last == pytest.approx(last) and state.pending is None
    _window(state, math.nan)  # a NaN is a divergence too
    assert state.guard() is True and state.rollbacks == 2 and state.lr_mult == 0.25


def test_a_slow_drift_is_not_a_divergence(problem):
    """Windows are compared with the previous one: a fit whose error rises ~1 dB per window (a
    rung's rate weight squeezing its bits) is never rolled back."""
    _, state = _run(problem, ft.FitSettings(steps=20, lr=2e-2, batch=2, lam=0.64), 2)
    mse = 0.01
    for _ in range(10):
        _window(state, mse)
        assert state.guard() is False
        mse *= 10 ** 0.12
    assert state.rollbacks == 0


def test_a_new_rate_weight_starts_over(problem):
    _, state = _run(problem, ft.FitSettings(steps=20, lr=2e-2, batch=2, lam=0.64), 4)
    for _ in range(2):  # a baseline and a vouched-for state to return to
        _window(state, 0.01)
        state.guard()
    fork = ft.branch(state)
    fork.lam = 16.0
    _window(fork, 0.01 * 10 ** (2 * ft.GUARD_DB / 10))  # its first window mixes the two weights
    assert fork.guard() is False and fork.guard_lam == 16.0 and fork.guard_last is None
    assert fork.rollbacks == 0 and fork.kept is not None  # the shared phase's state stays kept
    _window(state, 0.01 * 10 ** (2 * ft.GUARD_DB / 10))
    assert state.guard() is True  # the same jump at the old weight is a divergence


@pytest.mark.parametrize("lr", [1.0, 5.0])
def test_a_diverging_fit_ends_better_with_the_guard(problem, one_thread, monkeypatch, lr):
    """30 good steps, then a step size 100x or 500x the preset's blows the fit up; with checks
    every 5 steps the guard rolls it back and halves the step until it holds."""
    monkeypatch.setattr(ft, "GUARD_EVERY", 5)
    s = ft.FitSettings(steps=60, lr=2e-2, batch=2, lam=0.64)
    wild = replace(s, lr=lr, rate_lr=lr)

    def fit():
        model, state = _run(problem, s, 30)
        return model, _run(problem, wild, 60, state)[1]
    model, guarded = fit()
    monkeypatch.setattr(ft, "GUARD_DB", math.inf)  # never rolls back
    model_u, unguarded = fit()
    assert guarded.rollbacks >= 1 and unguarded.rollbacks == 0
    mse_g, mse_u = _gop_mse(problem, model, guarded), _gop_mse(problem, model_u, unguarded)
    assert 10 * math.log10(mse_u / mse_g) > 3.0, (mse_g, mse_u)


def test_a_fit_that_holds_runs_as_without_the_guard(problem, one_thread, monkeypatch):
    monkeypatch.setattr(ft, "GUARD_EVERY", 3)
    s = ft.FitSettings(steps=12, lr=2e-2, batch=2, lam=0.64, seed=5)
    _, watched = _run(problem, s, 12)
    monkeypatch.setattr(ft, "GUARD_DB", math.inf)  # checks that can never roll back
    _, plain = _run(problem, s, 12)
    assert watched.rollbacks == 0 and watched.kept is not None
    assert torch.equal(watched.resid, plain.resid)
    assert torch.equal(watched.rate.log_step, plain.rate.log_step)


def test_guard_steps_follow_the_schedule():
    s = ft.FitSettings(steps=120, lr=2e-2, batch=8)  # decay from step 72
    assert [k for k in range(1, 121) if ft.guard_step(k, s)] == [50, 72, 100, 120]


@pytest.mark.parametrize("where", ["branch", "end"])
def test_a_fit_diverging_just_before_a_branch_or_the_end_is_caught(problem, one_thread, monkeypatch, where):
    """Rungs of a ladder branch off the shared stable phase: one that diverged in its last
    steps would hand every rung a broken state (BasketballPass -q 5, c8-coded init: 24.7 ->
    19.5 dB in the last 9 shared steps, 14.6 dB at the end). The branch point and the last step
    are checked whatever GUARD_EVERY says."""
    monkeypatch.setattr(ft, "GUARD_EVERY", 10)
    s = ft.FitSettings(steps=60, lr=2e-2, batch=2, lam=0.64)  # decay from 36
    last = ft.decay_start(s) if where == "branch" else s.steps
    stop = (last - 1) // 10 * 10  # the last regular check before it
    model, state = _run(problem, s, stop)
    assert torch.equal(state.pending["resid"], state.resid)
    good = state.kept["resid"].clone()  # the state at stop - 10, vouched for by the window after it
    _run(problem, replace(s, lr=5.0, rate_lr=5.0), last, state)
    assert state.rollbacks == 1 and torch.equal(state.resid, good)


def test_the_guard_reads_one_number_per_check(problem, one_thread, monkeypatch):
    """The loop's only host reads are the guard's, one per guard step (a GPU fit waits for the
    device there and nowhere else)."""
    monkeypatch.setattr(ft, "GUARD_EVERY", 4)
    init, ghw, base, frames = problem
    model = build_model(init.config, ghw, init.state)
    s = ft.FitSettings(steps=12, lr=2e-2, batch=2, lam=0.64)
    state = gop.start_fit(model, base, s)
    reads = []
    with monkeypatch.context() as m:
        for name in ("__float__", "item", "tolist", "__bool__", "__int__"):
            def read(self, *a, _orig=getattr(torch.Tensor, name), _name=name, **k):
                caller = sys._getframe(1).f_code.co_filename
                if any(part in caller for part in ("codec", "metanerv")):
                    reads.append(_name)
                return _orig(self, *a, **k)
            m.setattr(torch.Tensor, name, read)
        gop.run_fit(model, frames, base, state, s, 12, PIXELS, progress=False)
    assert reads == ["__float__"] * 4  # steps 4, 7 (the branch point), 8, 12


def test_the_encoder_reports_a_rolled_back_fit(tmp_path, monkeypatch, capsys):
    """A fit that diverged (its step size made 500x larger after 20 good steps, checks every 5
    steps) is rolled back, and the CLI says so; a bench record carries the count
    (benchmarks.codecs.Nervc.last_info)."""
    from codec import cli
    from tests.conftest import DATA
    monkeypatch.setattr(ft, "GUARD_EVERY", 5)
    src = DATA / "fixtures" / "bus_qcif_30f.264"
    args = ["encode", str(src), str(tmp_path / "o.nerv"), "--frames", "0:4", "--scale", "4",
            "--steps", "40", "--quiet", "-y"]
    assert cli.main(args) == 0
    assert "diverged" not in capsys.readouterr().out
    schedule = ft.wsd_lr
    monkeypatch.setattr(ft, "wsd_lr", lambda step, *a, **k: schedule(step, *a, **k) * (500.0 if step >= 20 else 1.0))
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "the fit diverged" in out and "went back to its last good state" in out
