"""The c8-learned step sizes against the shipped ones on train clips (the selection check the
bench result needs): one clip, one init, `medium`, rungs 1/3/5/7 (benchmarks/trials.py).

    PYTHONPATH=. python benchmarks/results/c8-metasgd/points.py CLIP FRAMES REDUCE NAME INIT OUT.jsonl
"""
from __future__ import annotations

import sys

from benchmarks.trials import run_point


def main(argv: list[str]) -> int:
    clip, frames, reduce, name, init, out = argv[:6]
    run_point(clip, int(frames), int(reduce), name, out, preset="medium", init=init)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
