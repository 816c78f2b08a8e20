#!/bin/sh
# Each snapshot of metatrain.sh adapted to the four held-back train clips at the encoder's settings
# (half size, first 16 frames, batch 2, lr 1e-2, balanced loss, lambda 0), with a random init as the
# reference; the shipped default (meta-trained on all of train/, these clips included) for scale.
cd /work/main
W=benchmarks/work/meta-curve
OMP_NUM_THREADS=1 python -m benchmarks.adaptation --native --data ${HELD:-/tmp/heldback} --scale 2 --frames 16 \
  --steps 0,10,50,100 --batch 2 --lr 1e-2 --lam 0 --tune balanced \
  --init random=random --init s25=$W/s25.safetensors --init s50=$W/s50.safetensors \
  --init s100=$W/s100.safetensors --init s200=$W/s200.safetensors --init s400=$W/s400.safetensors \
  --init default=metanerv/inits/default.safetensors \
  --results $W/adapt --jobs 2 --threads 1 \
  --out-json benchmarks/results/meta-curve/curve.json --out-png benchmarks/results/meta-curve/curve.png --quiet
