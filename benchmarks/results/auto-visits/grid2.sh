#!/bin/sh
# After grid.sh: AUTO_VISITS 96 (floor 90 px), and 48 with a 64-px floor on the clips the 90-px
# floor held back (one process, one thread). Appends to points.jsonl next to this script.
D=benchmarks/results/auto-visits
T=../shared/data/train
export OMP_NUM_THREADS=1 PYTHONPATH=.
for spec in "chaplin.mp4 30 2" "cup.mp4 30 2" "vtest.avi 30 2" "bedroom.mp4 30 2" "box.mp4 16 1"; do
  set -- $spec
  python $D/visits_points.py $T/$1 $2 $3 96 90 medium 1,3,5,7 $D/points.jsonl
done
for spec in "chaplin.mp4 30 2" "cup.mp4 30 2"; do
  set -- $spec
  python $D/visits_points.py $T/$1 $2 $3 48 64 medium 1,3,5,7 $D/points.jsonl
done
