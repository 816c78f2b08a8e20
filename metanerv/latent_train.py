"""``python -m metanerv.latent_train DIR --out FILE``: train the latent encoder of an init.

The init's networks stay frozen; the encoder (``metanerv.latent``) learns to propose, from a
GOP's frames alone, the grid anchors with which the init draws those frames best (MSE of the
frames decoded from :func:`metanerv.latent.start_grid`). Tasks are the meta-learner's
(``metanerv.tasks.TaskSampler``, downscaled clips of 8-32 frames, 64-160 px) on the ``meta``
split by default, so the held-back clips stay unseen; the anchor count is drawn as the encoder
uses it (the init's 4, or one per two frames as the upper rungs do, ``codec.ladder``).
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from metanerv import splits
from metanerv.init_file import DEFAULT_INIT, load_init
from metanerv.latent import LatentEncoder, save_latent_encoder, start_grid
from metanerv.model import NeRV, NeRVConfig, build_model
from metanerv.tasks import TaskSampler

MANY_ANCHORS_SHARE = 0.6  # tasks with one anchor per two frames (the upper rungs), else the init's


def task_anchors(frames: int, init_anchors: int, rng: np.random.Generator) -> int:
    """The anchors a task is drawn with: the init's, or ~one per two frames kept on the init's
    anchors (``1 + 3m`` for a 4-anchor init), as ``codec.ladder.gop_anchors`` gives."""
    if rng.random() >= MANY_ANCHORS_SHARE:
        return init_anchors
    step = max(init_anchors - 1, 1)
    return max(init_anchors, 1 + step * round((0.5 * frames - 1) / step))


def train(data: str, out: str, init_path: str, steps: int, width: int = 64, lr: float = 1e-3,
          batch: int = 8, split: str = "meta", seed: int = 0, log_every: int = 50,
          save_every: int = 200, cache: str | None = None) -> list[float]:
    """Train and write the encoder to ``out`` (every ``save_every`` steps and at the end);
    returns the per-step lead in dB of the proposed start over the init's grid."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    init = load_init(init_path)
    cfg = init.config
    stride = cfg.total_stride
    sampler = TaskSampler(data, stride=stride, disk_cache=cache)
    sampler.videos = splits.select(sampler.videos, split)
    enc = LatentEncoder(cfg.grid_channels, stride, width)
    opt = torch.optim.Adam(enc.parameters(), lr=lr)
    models: dict[tuple, NeRV] = {}
    leads: list[float] = []
    t0 = time.time()
    for step in range(1, steps + 1):
        task = sampler.sample(rng, int(rng.integers(8, 33)))
        frames = task.pixels()
        n = frames.shape[0]
        grid_hw = (task.hw[0] // stride, task.hw[1] // stride)
        anchors = task_anchors(n, cfg.grid_anchors, rng)
        model = models.get((grid_hw, anchors))
        if model is None:
            config = NeRVConfig.from_dict({**cfg.to_dict(), "grid_anchors": anchors})
            model = build_model(config, grid_hw, init.state).requires_grad_(False)
            models[(grid_hw, anchors)] = model
        params = dict(model.named_parameters())
        grid = start_grid(enc, frames, task.times, params["grid"])
        idx = torch.from_numpy(rng.permutation(n)[:batch])
        loss = F.mse_loss(functional_call(model, {**params, "grid": grid}, (task.times[idx],)), frames[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:  # cosine decay to zero
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        with torch.no_grad():
            before = F.mse_loss(model(task.times[idx]), frames[idx])
        leads.append(10 * math.log10(before.item() / max(loss.item(), 1e-12)))
        if log_every and step % log_every == 0:
            print(f"step {step}/{steps}: start leads the init's grid by {np.mean(leads[-log_every:]):+.2f} dB "
                  f"({time.time() - t0:.0f} s)", flush=True)
        if step % save_every == 0 or step == steps:
            save_latent_encoder(enc, out, init.digest, {"steps": step, "data": split, "width": width, "lr": lr,
                                                        "batch": batch, "seed": seed})
    return leads


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m metanerv.latent_train", description=__doc__.split("\n")[0])
    p.add_argument("data", metavar="DIR", help="folder of training videos")
    p.add_argument("--out", required=True, help="the encoder file to write (*.latent.safetensors)")
    p.add_argument("--init", default=str(DEFAULT_INIT), help="the init whose grid it proposes changes to")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--split", choices=splits.SPLITS, default="meta")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help="folder for the sampler's decoded-frame cache")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    train(a.data, a.out, a.init, a.steps, a.width, a.lr, split=a.split, seed=a.seed, cache=a.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
