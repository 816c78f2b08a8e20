#!/bin/sh
# the stable phase at a share of the rung weight on five train/ clips at `medium`, rungs 1/3/5/7, one process per
# variant, one thread each: sh benchmarks/results/stable-lam/train_check.sh [share1 share0.5 ...]
D=benchmarks/results/stable-lam
T=../shared/data/train
export OMP_NUM_THREADS=1 PYTHONPATH=.
for V in ${@:-share1 share0.5}; do
  ( for spec in "chaplin.mp4 30 2" "cup.mp4 30 2" "vtest.avi 30 2" "bedroom.mp4 30 2" "box.mp4 16 1"; do
      python $D/points.py $T/${spec%% *} $(echo $spec | cut -d' ' -f2) $(echo $spec | cut -d' ' -f3) $V $D/train_points.jsonl
    done ) &
done
wait
