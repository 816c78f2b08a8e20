#!/bin/sh
# Issue 13's learning curve: the c8 model meta-trained from scratch on train/ with four clips held
# back (airplane, chaplin, cup, whisper; DATA holds links to the other 12), 400 outer steps over two
# processes, the init written after 25, 50, 100, 200 and 400 steps; each is then measured on the
# held-back clips (eval.sh). Reptile as the shipped lineage began (8 inner Adam steps of 8 frames).
cd /work/main
DATA=${DATA:-/tmp/train_lc}
W=benchmarks/work/meta-curve
prev=0
for n in 25 50 100 200 400; do
  resume=""; [ $prev -gt 0 ] && resume="--resume"
  OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m metanerv.train $DATA \
    --out $W/curve.safetensors --channels 32,24,16,8 --algo reptile --inner-steps 8 --inner-lr 5e-3 \
    --outer-lr 1e-3 --steps 400 --stop-after $((n - prev)) --seed 11 --threads 1 \
    --sides 96,112,128,144,160,176,192,208,224,240,256 --frame-cache /tmp/nervc_frames \
    --ckpt $W/curve.ckpt --ckpt-minutes 5 --quiet $resume
  cp $W/curve.safetensors $W/s$n.safetensors
  prev=$n
done
