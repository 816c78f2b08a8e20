cd /work/main
OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/results/capacity/width_points.py c8 benchmarks/inits/trial_c8.safetensors ../shared/data/train/vt2people_320x192_9f.yuv 9 300 8 4,7 benchmarks/results/capacity/width_points.jsonl
