cd /work/main
J=benchmarks/results/capacity/arch_points.jsonl
for a in base k1 c8 k1c8; do
  OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/results/capacity/arch_points.py $a ../shared/data/train/vt2people_320x192_9f.yuv 9 300 $J
done
for a in base k1 k1c8; do
  OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/results/capacity/arch_points.py $a ../shared/data/train/whisper_640x320.264 9 150 $J
done
