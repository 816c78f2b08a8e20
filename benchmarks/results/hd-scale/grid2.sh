#!/bin/bash
# Smaller sources at about equal encode time: native at medium, x2 at slower (4x the s/MP of the
# coded pixels), x3 at veryslow (8x). bash benchmarks/results/hd-scale/grid2.sh
set -u
D=../shared/data/train
R=benchmarks/results/hd-scale
P="env OMP_NUM_THREADS=1 PYTHONPATH=. python $R/scale_points.py"
w() {  # CLIP FRAMES SRC [x3]
  $P $D/$1 $2 1 medium 1,3,5 $R/points2.jsonl $3
  $P $D/$1 $2 2 slower 1,3,5 $R/points2.jsonl $3
  [ "${4:-}" = x3 ] && $P $D/$1 $2 3 veryslow 1,3,5 $R/points2.jsonl $3
  true
}
( w airplane.mp4 16 1 x3; w vt2people_320x192_9f.yuv 9 1; w 01_dog.mp4 16 4; w flower_720p.264 16 2 x3 ) > $R/worker3.log 2>&1 &
( w chaplin.mp4 16 1 x3; w whisper_640x320.264 9 1; w office_720p.264 16 4; w box.mp4 16 1 ) > $R/worker4.log 2>&1 &
wait
