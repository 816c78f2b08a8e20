#!/bin/sh
# meta-curve's run (../meta-curve/metatrain.sh: c8 from scratch on the 12 train clips left after
# holding back airplane, chaplin, cup and whisper; Reptile 8 x 8 frames; a 400-step budget over
# two processes, seed 11) with --colour-aug 0.5: half the tasks get their RGB channels in another
# order. Stopped after 200 outer steps (400 tasks), meta-curve's s200 snapshot at the same point
# of the same outer schedule is the control.
cd /work/main
DATA=${DATA:-/tmp/train_lc}
W=benchmarks/work/colour-aug
OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m metanerv.train $DATA \
  --out $W/colour.safetensors --channels 32,24,16,8 --algo reptile --inner-steps 8 --inner-lr 5e-3 \
  --outer-lr 1e-3 --steps 400 --stop-after 200 --seed 11 --threads 1 --colour-aug 0.5 \
  --sides 96,112,128,144,160,176,192,208,224,240,256 --frame-cache /tmp/nervc_frames \
  --ckpt $W/colour.ckpt --ckpt-minutes 5 --quiet "$@"
