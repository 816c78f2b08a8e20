#!/bin/sh
# The shipped init (c12-learned step sizes) and the same tensors with the c8-learned ones on
# train/ clips at `medium`, rungs 1/3/5/7, one process per init, one thread each.
D=benchmarks/results/c8-metasgd
T=../shared/data/train
export OMP_NUM_THREADS=1 PYTHONPATH=.
for V in "shipped default" "c8sgd benchmarks/inits/c8_metasgd.safetensors"; do
  set -- $V
  ( for spec in "chaplin.mp4 30 2" "cup.mp4 30 2" "vtest.avi 30 2" "bedroom.mp4 30 2" "box.mp4 16 1"; do
      python $D/points.py $T/${spec%% *} $(echo $spec | cut -d' ' -f2) $(echo $spec | cut -d' ' -f3) $1 $2 $D/train_points.jsonl
    done ) &
done
wait
