"""Does Adam's second-moment decay (beta2) make the fit collapse? One train clip, one variant.

Variants patch ``codec.finetune``'s Adam: ``b999`` is torch's default (0.9, 0.999), which the
encoder used until this trial; ``b99`` is (0.9, 0.99), ``b995`` (0.9, 0.995). INIT is
``shipped`` (metanerv/inits/default.safetensors) or a path.

    PYTHONPATH=. python benchmarks/results/fit-stability/points.py CLIP FRAMES REDUCE VARIANT INIT OUT.jsonl
"""
from __future__ import annotations

import sys

import torch

from benchmarks.trials import run_point

BETA2 = {"b999": 0.999, "b995": 0.995, "b99": 0.99}


def patch(beta2: float) -> None:
    adam = torch.optim.Adam

    class Adam(adam):
        def __init__(self, params, **kw):
            kw["betas"] = (0.9, beta2)
            super().__init__(params, **kw)

    torch.optim.Adam = Adam  # a trial process: codec.finetune.start_fit looks it up per fit


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, init, out = argv[:6]
    name = variant if init == "shipped" else f"{variant}-{init.rsplit('/', 1)[-1].split('.')[0]}"
    run_point(clip, int(frames), int(reduce), name, out, patch=lambda: patch(BETA2[variant]),
              preset="medium", init="default" if init == "shipped" else init)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
