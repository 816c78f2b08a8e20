#!/bin/sh
# Long-horizon continuation of the default init (d8680c0d): Reptile through 32 inner Adam steps of
# 2 frames at the encoder's lr (1e-2) and loss (balanced), instead of 8 steps of 8 frames at 5e-3,
# so the init is pulled toward what ~100 steps of the encoder's own fit reach. Tasks at the
# encoder's coded sizes (96-256 px sides), train/ only, 60 min over two processes, checkpoint
# every 5 min. Resume: add --resume.
cd /work/main
OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m metanerv.train ../shared/data/train \
  --out benchmarks/work/c8long/c8_long.safetensors --channels 32,24,16,8 --start-from metanerv/inits/default.safetensors \
  --algo reptile --inner-steps 32 --batch 2 --inner-lr 1e-2 --loss balanced --outer-lr 5e-4 \
  --frames-start 8 --frames 32 --minutes 60 --seed 7 --threads 1 \
  --sides 96,112,128,144,160,176,192,208,224,240,256 --frame-cache /tmp/nervc_frames \
  --ckpt benchmarks/work/c8long/c8_long.ckpt --ckpt-minutes 5 --quiet "$@"
