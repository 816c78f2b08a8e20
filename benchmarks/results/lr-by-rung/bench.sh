# the same on bench clips (report only): lr 1e-2 at the default preset -> bench.jsonl (lr 2e-2: ../capacity/c8_single.jsonl, shipped rows)
cd /work/main
J=benchmarks/results/lr-by-rung/bench.jsonl
for spec in "../shared/data/bench/carphone_qcif_120f.mp4 32 3" "../shared/data/bench/carphone_qcif_120f.mp4 32 5" "../shared/data/bench/carphone_qcif_120f.mp4 32 7" "../shared/data/bench/foreman_cif_300f.264 16 3" "../shared/data/bench/foreman_cif_300f.264 16 5" "../shared/data/bench/mobile_cif_30f.264 16 3" "../shared/data/bench/mobile_cif_30f.264 16 5"; do
  set -- $spec
  line=$(OMP_NUM_THREADS=1 python -m codec encode $1 /tmp/exp/lrb.nerv -q $3 --frames 0:$2 --lr 1e-2 -y --quiet 2>&1 | head -1)
  echo "{\"clip\": \"$(basename $1)\", \"frames\": $2, \"q\": $3, \"lr\": 1e-2, \"bytes\": $(echo "$line" | grep -o '[0-9]* bytes' | cut -d' ' -f1), \"bpp\": $(echo "$line" | grep -o '[0-9.]* bpp' | cut -d' ' -f1), \"psnr\": $(echo "$line" | grep -o 'PSNR [0-9.]*' | cut -d' ' -f2)}" | tee -a $J
done
