# The two ablated inits: the shipped c8 recipe (../c8-meta/README.md) with one guidance off,
# same warm start, seed and wall budget, both at once (one process x one thread each).
cd /work/main
for v in no_spatial no_temporal; do
  flag=--no-spatial; [ $v = no_temporal ] && flag="--no-temporal --spatial"  # --spatial: opt-in since 2026-11-28
  OMP_NUM_THREADS=1 python -m metanerv.train ../shared/data/train --out benchmarks/work/guid/c8_$v.safetensors \
    --channels 32,24,16,8 --start-from benchmarks/inits/trial_c8.safetensors --algo reptile --inner-steps 8 \
    --inner-lr 5e-3 --outer-lr 1e-3 --minutes 38 --seed 3 --threads 1 $flag --quiet > benchmarks/work/guid/$v.log 2>&1 &
done
wait
