#!/bin/sh
# The c8-coded init (d8680c0d) continued with the encoder's balanced loss (--loss balanced: half
# L1 + SSIM, half log-MSE per task), otherwise as ../c8-coded/metatrain.sh: down tasks at the
# encoder's coded sizes (96-256 px sides), no spatial guidance, train/ only, two processes,
# checkpoint every 5 min. Budget across resumes: 55 min. Resume: sh metatrain.sh --resume
cd "$(dirname "$0")/../../.."
OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m metanerv.train ../shared/data/train \
  --out benchmarks/work/c8bal/c8_balanced.safetensors --channels 32,24,16,8 \
  --start-from benchmarks/inits/c8_coded.safetensors --loss balanced \
  --algo reptile --inner-steps 8 --inner-lr 5e-3 --outer-lr 5e-4 --minutes 55 --seed 6 --threads 1 \
  --sides 96,112,128,144,160,176,192,208,224,240,256 --frame-cache /tmp/nervc_frames \
  --ckpt benchmarks/work/c8bal/c8_balanced.ckpt --ckpt-minutes 5 --quiet "$@"
