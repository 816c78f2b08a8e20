# Guidance ablations on the c8 model, measured at native resolution (issue 13 item 5).
# After train.sh: attach the shipped init's step sizes, RD at the default preset (the encoder's
# path, 10 points of ../c8-meta/), then adaptation at lam = 0 (first 16 frames, 6 bench clips).
cd /work/main
W=benchmarks/work/guid
R=benchmarks/results/guidance-c8
for v in no_spatial no_temporal; do
  PYTHONPATH=. python benchmarks/results/c8-meta/add_step_sizes.py $W/c8_$v.safetensors benchmarks/inits/c8_$v.safetensors
done
for v in no_spatial no_temporal; do
  J=$R/runs.jsonl FITS=meta-lr bash benchmarks/results/c8-meta/run.sh c8_$v benchmarks/inits/c8_$v.safetensors > $W/rd_$v.log 2>&1 &
done
wait
OMP_WAIT_POLICY=PASSIVE python -m benchmarks.adaptation --native --frames 16 --steps 0,10,25,50,100 --lam 0 \
  --clips BasketballPass_416x240_png,carphone_qcif_120f,cars_320x240_30f,coffee_320x180,foreman_cif_300f,mobile_cif_30f \
  --init shipped=metanerv/inits/default.safetensors --init no_spatial=benchmarks/inits/c8_no_spatial.safetensors \
  --init no_temporal=benchmarks/inits/c8_no_temporal.safetensors --init random=random \
  --results $W/adapt --threads 1 --jobs 2 --out-json $R/adaptation.json --out-png $R/adaptation.png --quiet
