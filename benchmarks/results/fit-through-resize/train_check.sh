#!/bin/sh
# halfway (the encoder at 28714d6) against through (this patch) on five train/ clips at `medium`,
# rungs 1/3/5/7, one process per variant, one thread each: sh train_check.sh [VARIANT ...]
# (the clips: benchmarks.trials.TRAIN_CLIPS; OUT overrides the records file)
D=benchmarks/results/fit-through-resize
python -m benchmarks.trials $D/points.py ${OUT:-$D/train_points.jsonl} ${@:-halfway through}
