#!/bin/bash
# The HD internal-resolution grid on train/ clips: two workers, one thread each.
# bash benchmarks/results/hd-scale/grid.sh   (appends to benchmarks/results/hd-scale/points.jsonl)
set -u
D=../shared/data/train
R=benchmarks/results/hd-scale
P="env OMP_NUM_THREADS=1 PYTHONPATH=. python $R/scale_points.py"
worker() {  # CLIP FRAMES: native medium, x2 medium, x2 slower, x4 medium, x4 veryslow
  $P $D/$1 $2 1 medium 1,3,5 $R/points.jsonl
  $P $D/$1 $2 2 medium 1,3,5 $R/points.jsonl
  $P $D/$1 $2 2 slower 1,3,5 $R/points.jsonl
  $P $D/$1 $2 4 medium 1,3,5 $R/points.jsonl
  $P $D/$1 $2 4 veryslow 1,3,5 $R/points.jsonl
}
( worker office_720p.264 16; worker 01_dog.mp4 16 ) > $R/worker1.log 2>&1 &
( worker flower_720p.264 16; worker street_1080p.264 8 ) > $R/worker2.log 2>&1 &
wait
