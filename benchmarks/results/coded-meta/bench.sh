#!/bin/sh
# bench at medium with candidate init $1 (path) as the default, in worktree /work/wt-$2, one process over all 7 clips
set -e
cd "$(git rev-parse --show-toplevel)"
git worktree add -f /work/wt-$2 HEAD >/dev/null 2>&1 || true
cp $1 /work/wt-$2/metanerv/inits/default.safetensors
R=/work/wt-$2/benchmarks/work/rd-$2
mkdir -p $R
for c in foreman_cif_300f cars_320x240_30f carphone_qcif_120f mobile_cif_30f BasketballPass_416x240_png coffee_320x180 BasketballDrill_832x480_9f; do
  mkdir -p $R/$c; cp -r benchmarks/results/v4-guard/$c/x264 benchmarks/results/v4-guard/$c/x265 $R/$c/
done
cd /work/wt-$2
OMP_NUM_THREADS=1 python -m codec bench --results $R --codecs nervc-meta --threads 1 --no-ms-ssim --no-progress \
  --clips foreman_cif_300f,cars_320x240_30f,carphone_qcif_120f,mobile_cif_30f,BasketballPass_416x240_png,coffee_320x180,BasketballDrill_832x480_9f > /tmp/bench_$2.log 2>&1
python -m codec bench table $R --metric psnr_rgb --bpp 0.02,0.05,0.1 --versus /work/main/benchmarks/results/v6-srcpx -o $R/table.md
echo done $2
