#!/bin/sh
# The default init's step sizes at temperatures ALPHA (make_inits.py) on train/ clips at
# `medium`, rungs 1/3/5/7, one process per variant, one thread each.
# sh benchmarks/results/lr-temperature/train_check.sh 1.0 1.5
D=benchmarks/results/lr-temperature
T=../shared/data/train
export OMP_NUM_THREADS=1 PYTHONPATH=.
python $D/make_inits.py benchmarks/work/lr-temp "$@"
for A in "$@"; do
  ( for spec in "chaplin.mp4 30 2" "cup.mp4 30 2" "vtest.avi 30 2" "bedroom.mp4 30 2" "box.mp4 16 1"; do
      python benchmarks/results/c8-metasgd/points.py $T/${spec%% *} $(echo $spec | cut -d' ' -f2) $(echo $spec | cut -d' ' -f3) \
        a$A benchmarks/work/lr-temp/alpha$A.safetensors $D/train_points.jsonl
    done ) &
done
wait
