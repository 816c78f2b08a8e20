# Where does the ladder stop buying picture, per preset? Train clips only; one encode per point.
# usage: bash grid.sh PRESET "Q..." [CLIP-SPEC...]   -> ladder.jsonl (one line per encode)
# Each rung is encoded with --lam set to its ladder value, so the encoder's budget floor (the
# thing this measures) does not apply.
# CLIP-SPEC is "path frames"; default: the four train clips below.
cd /work/main
preset=$1; qs=$2; shift 2
J=benchmarks/results/lam-floor/ladder.jsonl
[ $# -eq 0 ] && set -- "../shared/data/train/vt2people_320x192_9f.yuv 9" "../shared/data/train/whisper_640x320.264 9" \
  "../shared/data/train/chaplin.mp4 16" "../shared/data/train/airplane.mp4 16"
tmp=$(mktemp -d)
for spec in "$@"; do
  set -- $spec
  for q in $qs; do
    lam=$(python -c "from codec.ladder import LADDER; print(LADDER[$q].lam)")
    t0=$(date +%s.%N)
    line=$(OMP_NUM_THREADS=1 python -m codec encode $1 $tmp/o.nerv --lam $lam --preset $preset --frames 0:$2 -y --quiet 2>&1 | head -1)
    t1=$(date +%s.%N)
    echo "{\"preset\": \"$preset\", \"clip\": \"$(basename $1)\", \"frames\": $2, \"q\": $q, \"bytes\": $(echo "$line" | grep -o '[0-9]* bytes' | cut -d' ' -f1), \"bpp\": $(echo "$line" | grep -o '[0-9.]* bpp' | cut -d' ' -f1), \"psnr\": $(echo "$line" | grep -o 'PSNR [0-9.]*' | cut -d' ' -f2), \"wall_s\": $(echo "$t1 - $t0" | bc)}" | tee -a $J
  done
done
rm -rf $tmp
