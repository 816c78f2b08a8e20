#!/bin/sh
# Continuation of the shipped c8 init without spatial guidance, down tasks at the encoder's coded
# sizes (96-256 px sides), 90 min budget across resumes, checkpoint every 5 min. Resume: add --resume.
cd /work/main
OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m metanerv.train ../shared/data/train \
  --out benchmarks/work/c8coded/c8_coded.safetensors --channels 32,24,16,8 --start-from metanerv/inits/default.safetensors \
  --algo reptile --inner-steps 8 --inner-lr 5e-3 --outer-lr 5e-4 --minutes 90 --seed 5 --threads 1 \
  --sides 96,112,128,144,160,176,192,208,224,240,256 --frame-cache /tmp/nervc_frames \
  --ckpt benchmarks/work/c8coded/c8_coded.ckpt --ckpt-minutes 5 --quiet "$@"
