#!/bin/sh
# the stable phase at a share of the rung weight on five train/ clips at `medium`, rungs 1/3/5/7, one process per
# variant, one thread each: sh benchmarks/results/stable-lam/train_check.sh [share1 share0.5 ...]
# (the clips: benchmarks.trials.TRAIN_CLIPS; OUT overrides the records file)
D=benchmarks/results/stable-lam
python -m benchmarks.trials $D/points.py ${OUT:-$D/train_points.jsonl} ${@:-share1 share0.5}
