#!/bin/sh
# From-scratch guidance pair on the c8 shape: the shipped recipe without a warm start, spatial
# guidance on and off, same seed and wall budget, both at once (one process x one thread each).
# (2026-11-28 11:50-12:29 UTC; the two inits were then copied to benchmarks/inits/c8_scratch_{spatial,no_spatial}.safetensors)
cd /work/main
for v in spatial no_spatial; do
  flag=--spatial; [ $v = no_spatial ] && flag=--no-spatial  # explicit: spatial guidance became opt-in after this run
  OMP_NUM_THREADS=1 python -m metanerv.train ../shared/data/train --out benchmarks/work/scratch/c8_scratch_$v.safetensors \
    --channels 32,24,16,8 --algo reptile --inner-steps 8 --inner-lr 5e-3 --outer-lr 1e-3 --minutes 38 --seed 3 \
    --threads 1 --frame-cache /tmp/nervc_frames $flag --quiet > benchmarks/work/scratch/$v.log 2>&1 &
done
wait
