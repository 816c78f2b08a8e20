#!/bin/sh
# The fit's distortion at `medium`, rungs 1/3/5/7, the auto-visits clips (train/ only, box-reduced
# to bench-like sizes), one process, one thread. Appends to points.jsonl next to this script.
# usage: sh grid.sh VARIANT [VARIANT ...]
D=benchmarks/results/fit-loss
T=../shared/data/train
export OMP_NUM_THREADS=1 PYTHONPATH=.
for V in "$@"; do
  for spec in "chaplin.mp4 30 2" "cup.mp4 30 2" "vtest.avi 30 2" "bedroom.mp4 30 2" "box.mp4 16 1"; do
    set -- $spec
    python $D/loss_points.py $T/$1 $2 $3 medium 1,3,5,7 $V $D/points.jsonl
  done
done
