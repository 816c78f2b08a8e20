#!/bin/sh
# The colour-augmented inits after 200 and 400 outer steps (c200, c400: metatrain.sh, then again
# with --resume; each copied from colour.safetensors) and meta-curve's s200 and s400 (the same run
# without it, the same points of the same schedule), adapted to the four held-back train clips at
# the encoder's settings (half size, first 16 frames, batch 2, lr 1e-2, balanced loss, lambda 0),
# random init as the reference; the records of random, s200 and s400 are meta-curve's (same
# command, same machine).
cd /work/main
OMP_NUM_THREADS=1 python -m benchmarks.adaptation --native --data ${HELD:-/tmp/heldback} --scale 2 --frames 16 \
  --steps 0,10,50,100 --batch 2 --lr 1e-2 --lam 0 --tune balanced \
  --init random=random --init s200=benchmarks/work/meta-curve/s200.safetensors \
  --init s400=benchmarks/work/meta-curve/s400.safetensors \
  --init c200=benchmarks/work/colour-aug/c200.safetensors --init c400=benchmarks/work/colour-aug/c400.safetensors \
  --results benchmarks/work/meta-curve/adapt --jobs 2 --threads 1 \
  --out-json benchmarks/results/colour-aug/curve.json --out-png benchmarks/results/colour-aug/curve.png --quiet
