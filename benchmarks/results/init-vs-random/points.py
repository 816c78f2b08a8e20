"""Shipped init against random init where both make a picture (issue 13's RD check, rd-v2).

Under the ladder's rate weights a random init never leaves its start (`../v4-random/`), so the
two `-q` curves do not overlap. Here both inits are encoded at the same explicit rate weights
(`nervc encode --lam L` at `medium`), low enough for a random start to learn, on the bench
clips exactly as rd-v2 codes them (`benchmarks.protocol.v1_clips`). One JSON line per point:
file bytes, bpp, RGB PSNR of the decoded file against the protocol's frames.

    PYTHONPATH=. python benchmarks/results/init-vs-random/points.py INIT LAMS OUT.jsonl [CLIP ...]

INIT: default | random; LAMS: comma-separated rate weights (their order gives the point index).
"""
from __future__ import annotations

import json
import sys

from benchmarks.protocol import v1_clips
from benchmarks.trials import machine, measure_ladder


def main(argv: list[str]) -> int:
    init, lams, out, *names = argv
    with open(out, "a") as f:
        for clip in v1_clips():
            if names and clip.name not in names:
                continue
            video = clip.load()
            for i, lam in enumerate(float(x) for x in lams.split(",")):
                r = measure_ladder(video, [5], init=init, lam=lam, preset="medium")[0]
                r.update(q=i + 1, lam=lam, clip=clip.name, variant=init, machine=machine())
                line = json.dumps(r)
                print(line, flush=True)
                f.write(line + "\n")
                f.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
