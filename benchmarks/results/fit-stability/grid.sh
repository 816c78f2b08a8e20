#!/bin/sh
# The fit-stability trial: train/ clips of benchmarks/trials.py, `medium`, rungs 1/3/5/7, one
# process, one thread. usage: sh grid.sh INIT VARIANT [VARIANT ...]   (INIT: shipped or a path)
D=benchmarks/results/fit-stability
T=../shared/data/train
export OMP_NUM_THREADS=1 PYTHONPATH=.
INIT=$1; shift
for V in "$@"; do
  for spec in "chaplin.mp4 30 2" "cup.mp4 30 2" "vtest.avi 30 2" "bedroom.mp4 30 2" "box.mp4 16 1"; do
    set -- $spec
    python $D/points.py $T/$1 $2 $3 $V $INIT $D/points.jsonl
  done
done
