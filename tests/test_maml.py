"""MAML / Meta-SGD / Reptile semantics, after learn2learn's MAML and MetaSGD unit tests.

Ported checks: a clone computes what the original computes; adapting leaves the original
untouched; first-order meta-gradients equal the gradients of a detached copy of the adapted
weights; second-order meta-gradients reach the original through the inner steps (and are the
exact derivative, checked with gradcheck in float64); learned step sizes get gradients.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from metanerv import maml
from metanerv.losses import multiscale_loss
from metanerv.model import NeRVConfig, build_model
from metanerv.schedule import FrameSchedule
from metanerv.train import task_view

EPS = 1e-6
TINY = NeRVConfig(pe_freqs=4, embed_dim=8, grid_channels=4, grid_anchors=2,
                  channels=(6, 4), strides=(2, 2))


pytestmark = pytest.mark.usefixtures("one_thread")


def close(x: torch.Tensor, y: torch.Tensor, eps: float = EPS) -> bool:
    x, y = x.detach(), y.detach()
    return bool((x - y).norm() <= eps * max(1.0, float(y.norm())))


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    model = build_model(TINY, (2, 3), seed=1)
    # FiLM starts at zero, which would hide the time MLP from every gradient; perturb it.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "film" in name:
                p.normal_(0, 0.05)
    t = torch.tensor([0.0, 0.5, 1.0])
    x = torch.rand(3, 3, 8, 12)
    params = dict(model.named_parameters())

    def loss_fn(p, k=0):
        return multiscale_loss(functional_call(model, p, (t,), {"all_scales": True}), x, (0.3, 0.7))

    return model, params, loss_fn


def test_clone_computes_the_same(setup):
    model, params, loss_fn = setup
    for clone in (maml.clone_params(params), maml.clone_params(params)):
        assert close(loss_fn(clone), loss_fn(params))


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_adaptation_leaves_original_untouched(setup, first_order, opt):
    model, params, loss_fn = setup
    before = {k: v.detach().clone() for k, v in params.items()}
    lr = 0.5 if opt == "sgd" else 1e-2
    adapted = maml.adapt(loss_fn, params, 3, lr, first_order=first_order, opt=opt)
    for k, v in params.items():
        assert torch.equal(v.detach(), before[k]), k
        assert adapted[k] is not v
    assert float(loss_fn(adapted).detach()) < float(loss_fn(params).detach())
    assert any(not torch.equal(adapted[k].detach(), before[k]) for k in params)


def test_first_order_equals_detached_copy(setup):
    model, params, loss_fn = setup
    model.zero_grad()
    adapted = maml.adapt(loss_fn, params, 3, 0.5, first_order=True)
    ref = maml.detached_params(adapted)
    loss_fn(ref).backward()
    loss_fn(adapted).backward()
    for k, p in params.items():
        assert p.grad is not None and close(p.grad, ref[k].grad), k


def test_second_order_reaches_original_and_differs(setup):
    model, params, loss_fn = setup
    adapted = maml.adapt(loss_fn, params, 3, 0.5, first_order=False)
    second = torch.autograd.grad(loss_fn(adapted), list(params.values()))
    adapted_fo = maml.adapt(loss_fn, params, 3, 0.5, first_order=True)
    first = torch.autograd.grad(loss_fn(adapted_fo), list(params.values()))
    for g in second:
        assert g is not None and torch.isfinite(g).all()
    assert all(float(g.norm()) > 0 for g, (k, _) in zip(second, params.items()) if "film" not in k)
    diff = sum(float((a - b).norm()) for a, b in zip(second, first))
    assert diff > 1e-4 * sum(float(b.norm()) for b in first)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_second_order_gradient_is_exact(opt):
    """gradcheck of theta -> query_loss(adapt(theta)) in float64 on a tiny regression."""
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(5, 3, generator=g, dtype=torch.float64)
    ys = torch.randn(5, 2, generator=g, dtype=torch.float64)
    xq = torch.randn(4, 3, generator=g, dtype=torch.float64)
    yq = torch.randn(4, 2, generator=g, dtype=torch.float64)

    def net(p, x):
        return torch.tanh(x @ p["w"].T + p["b"])

    def support(p, k):
        return ((net(p, xs) - ys) ** 2).mean()

    def meta(w, b, log_lr):
        lrs = {"w": log_lr, "b": log_lr}
        a = maml.adapt(support, {"w": w, "b": b}, 2, lrs, first_order=False, opt=opt)
        return ((net(a, xq) - yq) ** 2).mean()

    w = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    log_lr = torch.tensor(np.log(0.3 if opt == "sgd" else 0.05), dtype=torch.float64,
                          requires_grad=True)
    assert torch.autograd.gradcheck(meta, (w, b, log_lr), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("first_order", [False, True])
def test_learned_lrs_receive_gradients(setup, first_order):
    model, params, loss_fn = setup
    log_lrs = maml.init_log_lrs(params, 0.3)
    for v in log_lrs.values():
        assert close(v.exp(), torch.tensor(0.3))
    adapted = maml.adapt(loss_fn, params, 2, log_lrs, first_order=first_order)
    loss_fn(adapted).backward()
    got = [k for k, v in log_lrs.items() if v.grad is not None and float(v.grad.abs()) > 0]
    assert "head.weight" in got and "blocks.0.conv.weight" in got
    assert all(p.grad is not None for k, p in params.items() if "film" not in k)


def test_unused_parameters_keep_their_values(setup):
    model, params, loss_fn = setup

    def head_only(p, k):
        return (p["head.weight"] ** 2).sum()

    adapted = maml.adapt(head_only, params, 2, 0.1)
    assert not torch.equal(adapted["head.weight"].detach(), params["head.weight"].detach())
    assert torch.equal(adapted["grid"].detach(), params["grid"].detach())


def test_reptile_moves_towards_adapted_weights(setup):
    model, params, loss_fn = setup
    before = {k: v.detach().clone() for k, v in params.items()}
    adapted = maml.reptile_adapt(loss_fn, params, 4, 1e-2)
    assert all(torch.equal(params[k].detach(), before[k]) for k in params)
    assert all(not v.requires_grad for v in adapted.values())
    assert float(loss_fn(adapted).detach()) < float(loss_fn(params).detach())
    maml.reptile_grad(params, adapted).backward()
    for k, p in params.items():
        assert close(p.grad, before[k] - adapted[k]), k


def test_reptile_grad_through_grid_resampling(setup):
    """The grid of a task view is resampled; Reptile's move still reaches the stored grid."""
    model, params, loss_fn = setup
    view = task_view(params, (4, 5))
    assert view["grid"].shape[-2:] == (4, 5)
    target = {k: v.detach() + 0.1 for k, v in view.items()}
    maml.reptile_grad(view, target).backward()
    assert params["grid"].grad is not None and params["grid"].grad.shape == params["grid"].shape
    assert float(params["grid"].grad.norm()) > 0


def test_clip_grad_norm():
    a = torch.zeros(3, requires_grad=True)
    a.grad = torch.tensor([3.0, 4.0, 0.0])
    assert maml.clip_grad_norm_([a], 1.0) == pytest.approx(5.0)
    assert float(a.grad.norm()) == pytest.approx(1.0, rel=1e-5)


def test_frame_schedule():
    s = FrameSchedule(start=2, end=32, ramp=0.5)
    assert s.frames_at(0.0) == 2 and s.frames_at(0.5) == 32 and s.frames_at(1.0) == 32
    counts = [s.frames_at(p / 20) for p in range(21)]
    assert counts == sorted(counts)
    step = FrameSchedule(start=2, end=32, ramp=1.0, shape="step")
    assert {step.frames_at(p / 50) for p in range(51)} == {2, 4, 8, 16, 32}
    off = FrameSchedule(start=2, end=32, enabled=False)
    assert off.frames_at(0.0) == 32
    with pytest.raises(ValueError):
        FrameSchedule(start=8, end=4)
