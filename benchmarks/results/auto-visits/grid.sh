#!/bin/sh
# AUTO_VISITS in {12, 24, 48} at `medium`, rungs 1/3/5/7, five train clips box-reduced to bench-like
# sizes (one process, one thread). Appends to points.jsonl next to this script.
D=benchmarks/results/auto-visits
T=../shared/data/train
export OMP_NUM_THREADS=1 PYTHONPATH=.
for V in 24 12 48; do
  for spec in "chaplin.mp4 30 2" "cup.mp4 30 2" "vtest.avi 30 2" "bedroom.mp4 30 2" "box.mp4 16 1"; do
    set -- $spec
    python $D/visits_points.py $T/$1 $2 $3 $V 90 medium 1,3,5,7 $D/points.jsonl
  done
done
