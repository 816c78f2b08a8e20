#!/bin/sh
# halfway (the encoder at 28714d6) against through (this patch) on five train/ clips at `medium`,
# rungs 1/3/5/7, one process per variant, one thread each: sh train_check.sh [VARIANT ...]
D=benchmarks/results/fit-through-resize
T=../shared/data/train
export OMP_NUM_THREADS=1 PYTHONPATH=.
for V in ${@:-halfway through}; do
  ( for spec in "chaplin.mp4 30 2" "cup.mp4 30 2" "vtest.avi 30 2" "bedroom.mp4 30 2" "box.mp4 16 1"; do
      python $D/points.py $T/${spec%% *} $(echo $spec | cut -d' ' -f2) $(echo $spec | cut -d' ' -f3) $V ${OUT:-$D/train_points.jsonl}
    done ) &
done
wait
