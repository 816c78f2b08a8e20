#!/bin/sh
# q8 at its own rate weight on five train/ clips at `medium`, rungs 6/7/8, one process per
# variant, one thread each: sh benchmarks/results/top-rung/train_check.sh [floor4 floor1.5 ...]
D=benchmarks/results/top-rung
T=../shared/data/train
export OMP_NUM_THREADS=1 PYTHONPATH=.
for V in ${@:-floor4 floor1.5}; do
  ( for spec in "chaplin.mp4 30 2" "cup.mp4 30 2" "vtest.avi 30 2" "bedroom.mp4 30 2" "box.mp4 16 1"; do
      python $D/points.py $T/${spec%% *} $(echo $spec | cut -d' ' -f2) $(echo $spec | cut -d' ' -f3) $V $D/train_points.jsonl
    done ) &
done
wait
