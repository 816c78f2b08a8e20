"""Each meta-learner, run for a few outer steps, provably learns something that transfers.

test_maml.py checks the gradients' algebra; this checks the outcome the shipped init exists
for: after N outer steps of ``train.meta_task_grad`` + Adam (the loop ``metanerv.train.run``
runs), a few inner steps from the meta-parameters fit *held-out* tasks of the same family
better than the same inner steps from the outer-step-0 parameters. A sign error or a
meta-gradient that never reaches the parameters leaves that ratio near or above 1. A second
check, on the trained meta-parameters, asks that
the inner loop itself helps: adapted loss well below the loss with no inner step.

The family: 16x16, 4-frame clips that share one smooth spatial pattern and differ in colour
and in a slow per-task colour drift, so there is something common to learn and something
per-task to adapt. Calibration (20 outer steps, 2 tasks per step, 4 seed sets): held-out loss
after / before 0.15-0.27 and adapted / unadapted 0.51-0.77 for every algorithm; the test asks
for < 0.5 and < 0.9. Checked by breaking the code on purpose: Reptile's pseudo-gradient with
its sign flipped gives 2.97 (fails), a MAML/FOMAML/Meta-SGD query loss that never reaches the
parameters gives 1.00 (fails), an inner loop that ascends gives adapted / unadapted > 1.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from metanerv import maml
from metanerv.model import build_model
from metanerv.tasks import Task
from metanerv.train import meta_task_grad, task_loss, task_view, tiny_config

SIDE, FRAMES = 16, 4
OUTER_STEPS, TASKS_PER_STEP, OUTER_LR, INNER_STEPS = 20, 2, 2e-2, 3
MAX_RATIO = 0.5  # held-out loss after / before the outer steps (observed 0.15-0.27)
MAX_ADAPTED_RATIO = 0.9  # after the outer steps: adapted / unadapted (observed 0.51-0.77)
ALGOS = {  # name: (algorithm, learned step sizes, inner optimizer, inner step size)
    "maml": ("maml", False, "sgd", 0.1),
    "fomaml": ("fomaml", False, "sgd", 0.1),
    "meta-sgd": ("maml", True, "sgd", 0.1),
    "reptile": ("reptile", False, "adam", 1e-2),
}
DEVICE = torch.device("cpu")


def family(seed: int, count: int) -> list[Task]:
    """``count`` tasks: 0.5 x pattern + 0.5 x a task colour, drifting over time."""
    rng = np.random.default_rng(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, SIDE), torch.linspace(0, 1, SIDE), indexing="ij")
    pattern = 0.5 + 0.3 * torch.sin(2 * math.pi * x) * torch.cos(math.pi * y)
    times = torch.arange(FRAMES, dtype=torch.float32) / (FRAMES - 1)
    tasks = []
    for k in range(count):
        colour = torch.tensor(rng.uniform(0.2, 0.8, 3), dtype=torch.float32)[:, None, None]
        drift = torch.tensor(rng.uniform(-1, 1, 3), dtype=torch.float32)[:, None, None]
        frames = torch.stack([(0.5 * colour + 0.5 * pattern + 0.1 * (t - 0.5) * drift).clamp(0, 1)
                              for t in times.tolist()])
        tasks.append(Task(frames, times, f"synthetic{k}"))
    return tasks


def post_adaptation_loss(model, base, log_lrs, tasks, opts, steps: int = INNER_STEPS) -> float:
    """Mean loss on every frame of each task after ``steps`` of the algorithm's own inner loop
    from ``base``."""
    every = torch.arange(FRAMES)
    losses = []
    for task in tasks:
        fn, evaluate = task_loss(model, task, None, DEVICE, [every] * steps)
        start = maml.detached_params(task_view({k: v.detach() for k, v in base.items()}, (1, 1)))
        if opts.algo == "reptile":
            adapted = maml.reptile_adapt(fn, start, steps, opts.inner_lr)
        else:
            lrs = {k: v.detach() for k, v in log_lrs.items()} if log_lrs else opts.inner_lr
            adapted = maml.adapt(fn, start, steps, lrs, first_order=True, opt=opts.inner_opt,
                                 learn_lrs=False)
        with torch.no_grad():
            losses.append(float(evaluate(adapted, every)[0]))
    return float(np.mean(losses))


@pytest.mark.parametrize("name", list(ALGOS))
def test_outer_steps_lower_the_held_out_post_adaptation_loss(name, one_thread):
    """N outer steps make the init adapt better to unseen tasks (and Meta-SGD's step sizes move)."""
    algo, learn_lr, inner_opt, inner_lr = ALGOS[name]
    opts = argparse.Namespace(algo=algo, inner_opt=inner_opt, inner_lr=inner_lr,
                              inner_steps=INNER_STEPS, batch=FRAMES)
    model = build_model(tiny_config(), (SIDE // 16, SIDE // 16), seed=0)
    base = dict(model.named_parameters())
    log_lrs = maml.init_log_lrs(base, inner_lr) if learn_lr else None
    groups = [{"params": list(base.values()), "lr": OUTER_LR}]
    if log_lrs:
        groups.append({"params": list(log_lrs.values()), "lr": 1e-2})
    optimizer = torch.optim.Adam(groups)
    meta = [p for g in groups for p in g["params"]]
    train_tasks, held_out = family(1, 4), family(2, 6)

    before = post_adaptation_loss(model, base, log_lrs, held_out, opts)
    for step in range(OUTER_STEPS):
        optimizer.zero_grad(set_to_none=False)
        for p in meta:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        for k in range(TASKS_PER_STEP):
            task = train_tasks[(step * TASKS_PER_STEP + k) % len(train_tasks)]
            meta_task_grad(model, base, log_lrs, task, opts, None, DEVICE,
                           np.random.default_rng([step, k]), scale=1.0 / TASKS_PER_STEP)
        maml.clip_grad_norm_(meta, 1.0)
        optimizer.step()
    after = post_adaptation_loss(model, base, log_lrs, held_out, opts)
    unadapted = post_adaptation_loss(model, base, log_lrs, held_out, opts, steps=0)

    assert after < MAX_RATIO * before, f"{name}: held-out loss {before:.4f} -> {after:.4f}"
    assert after < MAX_ADAPTED_RATIO * unadapted, (
        f"{name}: the inner loop does not adapt ({unadapted:.4f} -> {after:.4f})")
    if log_lrs:
        moved = [abs(float(v.detach()) - math.log(inner_lr)) for v in log_lrs.values()]
        assert max(moved) > 1e-3, "Meta-SGD's learned step sizes never changed"
