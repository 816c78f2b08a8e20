# c8 vs the shipped init, one rung per encode (what `nervc encode -q N` does), default preset
cd /work/main
J=benchmarks/results/capacity/c8_single.jsonl
for clip in "../shared/data/train/vt2people_320x192_9f.yuv 9" "../shared/data/train/whisper_640x320.264 9" "../shared/data/bench/carphone_qcif_120f.mp4 32" "../shared/data/bench/foreman_cif_300f.264 16" "../shared/data/bench/mobile_cif_30f.264 16"; do
  set -- $clip
  for q in 3 5; do
    for spec in shipped=metanerv/inits/default.safetensors c8=benchmarks/inits/trial_c8.safetensors; do
      OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/results/capacity/width_points.py ${spec%%=*} ${spec#*=} $1 $2 0 0 $q $J
    done
  done
done
