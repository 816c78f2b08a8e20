# peak lr of the default preset's fit, per rung, on the train clips (tuning) -> grid.jsonl
cd /work/main
J=benchmarks/results/lr-by-rung/grid.jsonl
for spec in "../shared/data/train/vt2people_320x192_9f.yuv 9" "../shared/data/train/whisper_640x320.264 9" "../shared/data/train/chaplin.mp4 16"; do
  set -- $spec
  for q in 3 5 7; do
    for lr in 2e-2 1e-2; do
      line=$(OMP_NUM_THREADS=1 python -m codec encode $1 /tmp/exp/lrg.nerv -q $q --frames 0:$2 --lr $lr -y --quiet 2>&1 | head -1)
      echo "{\"clip\": \"$(basename $1)\", \"frames\": $2, \"q\": $q, \"lr\": $lr, \"bytes\": $(echo "$line" | grep -o '[0-9]* bytes' | cut -d' ' -f1), \"bpp\": $(echo "$line" | grep -o '[0-9.]* bpp' | cut -d' ' -f1), \"psnr\": $(echo "$line" | grep -o 'PSNR [0-9.]*' | cut -d' ' -f2)}" | tee -a $J
    done
  done
done
