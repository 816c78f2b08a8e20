#!/bin/sh
# Meta-SGD step sizes learned for the c8 tensors: the default init's weights held fixed
# (--outer-lr 0: the id stays d8680c0db558e7bc), one log step size per tensor learned by
# first-order MAML through 16 Adam inner steps of the encoder's balanced loss, on down tasks at
# the encoder's coded sizes (96-256 px sides), train/ only, two processes, checkpoint every
# 5 min. The shipped step sizes were learned on the c12 tensors (../../inits/metasgd_warm).
# Budget across resumes: 40 min. Resume: sh metatrain.sh --resume
cd "$(dirname "$0")/../../.."
mkdir -p benchmarks/work/c8sgd
OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m metanerv.train ../shared/data/train \
  --out benchmarks/work/c8sgd/c8_metasgd.safetensors --channels 32,24,16,8 \
  --start-from metanerv/inits/default.safetensors --loss balanced \
  --algo fomaml --learn-lr --inner-opt adam --inner-steps 16 --inner-lr 5e-3 --outer-lr 0 --lr-lr 2e-2 \
  --minutes 40 --seed 8 --threads 1 \
  --sides 96,112,128,144,160,176,192,208,224,240,256 --frame-cache /tmp/nervc_frames \
  --ckpt benchmarks/work/c8sgd/c8_metasgd.ckpt --ckpt-minutes 5 --quiet "$@"
