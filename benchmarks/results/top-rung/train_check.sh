#!/bin/sh
# q8 at its own rate weight on five train/ clips at `medium`, rungs 6/7/8, one process per
# variant, one thread each: sh benchmarks/results/top-rung/train_check.sh [floor4 floor1.5 ...]
# (the clips: benchmarks.trials.TRAIN_CLIPS; OUT overrides the records file)
D=benchmarks/results/top-rung
python -m benchmarks.trials $D/points.py ${OUT:-$D/train_points.jsonl} ${@:-floor4 floor1.5}
