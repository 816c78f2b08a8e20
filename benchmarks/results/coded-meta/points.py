"""The coded-Reptile init against the shipped default on the train clips (the selection check
a bench result needs), and the same budget of lambda = 0 continuation (``long``) as the control: one clip, one variant, `medium`, rungs 1/3/5/7 (benchmarks/trials.py).

    PYTHONPATH=. python -m benchmarks.trials benchmarks/results/coded-meta/points.py \
        benchmarks/results/coded-meta/points.jsonl shipped coded_reptile
    PYTHONPATH=. python -m benchmarks.trials benchmarks/results/coded-meta/points.py \
        benchmarks/results/coded-meta/points.jsonl long
"""
from __future__ import annotations

import sys

from benchmarks.trials import run_point

INITS = {"shipped": "default", "coded_reptile": "benchmarks/inits/coded_reptile.safetensors",
         "long": "benchmarks/inits/c8_long.safetensors"}  # the lambda = 0 control, ../c8-long/


def main(argv: list[str]) -> int:
    clip, frames, reduce, variant, out = argv[:5]
    run_point(clip, int(frames), int(reduce), variant, out, preset="medium", init=INITS[variant])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
