cd /work/main
J=benchmarks/results/capacity/width_points.jsonl
C=../shared/data/train/vt2people_320x192_9f.yuv
for spec in shipped=metanerv/inits/default.safetensors wide2=benchmarks/inits/trial_wide2.safetensors; do
  OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/results/capacity/width_points.py ${spec%%=*} ${spec#*=} $C 9 300 8 4,7 $J
done
