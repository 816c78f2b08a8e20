#!/bin/sh
# area against prefilter targets on five train/ clips at `medium`, rungs 1/3/5/7, one process
# per variant, one thread each: sh benchmarks/results/coded-target/train_check.sh [VARIANT ...]
# (the clips: benchmarks.trials.TRAIN_CLIPS; OUT overrides the records file)
D=benchmarks/results/coded-target
python -m benchmarks.trials $D/points.py ${OUT:-$D/train_points.jsonl} ${@:-area prefilter}
