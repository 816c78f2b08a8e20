#!/bin/sh
# Continuations of the default init (d8680c0d) whose inner loop is the encoder's own fit
# (`--inner-rate`): quantized residuals from the init, learned steps and Laplace scales, the
# default's Meta-SGD step sizes, distortion (balanced) + lam * bits per pixel of a 60-frame GOP,
# lam drawn log-uniformly from 0.1..2 per coded pixel (the ladder's middle rungs at the coded
# sizes `medium` picks), 32 inner steps of 2 frames at the encoder's peak step size 2e-2 with its
# cosine decay. Reptile and first-order MAML side by side, one process each, 55 min, train/ only.
# Resume: add --resume.
cd /work/main
for algo in reptile fomaml; do
  OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python -m metanerv.train ../shared/data/train \
    --out benchmarks/work/coded/coded_$algo.safetensors --channels 32,24,16,8 \
    --start-from metanerv/inits/default.safetensors --algo $algo --inner-rate 0.1,2 --rate-frames 60 \
    --inner-steps 32 --batch 2 --inner-lr 2e-2 --loss balanced --outer-lr 5e-4 \
    --frames-start 8 --frames 32 --minutes 55 --seed 7 --threads 1 \
    --sides 96,112,128,144,160,176,192,208,224,240,256 --frame-cache /tmp/nervc_frames \
    --ckpt benchmarks/work/coded/coded_$algo.ckpt --ckpt-minutes 5 --quiet "$@" \
    > benchmarks/work/coded/coded_$algo.log 2>&1 &
done
wait
