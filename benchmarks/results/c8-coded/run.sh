# An init against the shipped one at the default preset and tune, the 10 points of ../c8-meta/run.sh
# (step sizes on, as the encoder runs) -> runs.jsonl next to this script.
# usage: sh run.sh NAME INIT
cd /work/main
name=$1; init=$2
J=${J:-benchmarks/results/c8-coded/runs.jsonl}
for spec in "../shared/data/train/whisper_640x320.264 9 5" "../shared/data/train/chaplin.mp4 16 5" "../shared/data/train/vt2people_320x192_9f.yuv 9 5" "../shared/data/train/whisper_640x320.264 9 3" "../shared/data/train/chaplin.mp4 16 3" "../shared/data/train/vt2people_320x192_9f.yuv 9 3" "../shared/data/bench/carphone_qcif_120f.mp4 32 5" "../shared/data/bench/foreman_cif_300f.264 16 5" "../shared/data/bench/mobile_cif_30f.264 16 5" "../shared/data/bench/carphone_qcif_120f.mp4 32 3"; do
  set -- $spec
  line=$(OMP_NUM_THREADS=1 python -m codec encode $1 /tmp/exp/$name.nerv -q $3 --frames 0:$2 --init $init -y --quiet 2>&1 | head -1)
  echo "{\"init\": \"$name\", \"clip\": \"$(basename $1)\", \"frames\": $2, \"q\": $3, \"fit\": \"meta-lr\", \"bytes\": $(echo "$line" | grep -o '[0-9]* bytes' | cut -d' ' -f1), \"bpp\": $(echo "$line" | grep -o '[0-9.]* bpp' | cut -d' ' -f1), \"psnr\": $(echo "$line" | grep -o 'PSNR [0-9.]*' | cut -d' ' -f2)}" | tee -a $J
done
