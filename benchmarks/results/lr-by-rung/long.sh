# the rd-v2 regime (300 steps of 8, q4 and q7 as one ladder) at lr 1e-2, train/vt2people
cd /work/main
OMP_NUM_THREADS=1 PYTHONPATH=. python - <<'PY'
import json, time, codec.encoder as E
t = time.time()
r = E.encode_ladder("../shared/data/train/vt2people_320x192_9f.yuv", {4: "/tmp/exp/l4.nerv", 7: "/tmp/exp/l7.nerv"},
                    steps=300, batch=8, lr=1e-2, frames=slice(0, 9), progress=False, overwrite=True)
for q, x in sorted(r.items()):
    rec = dict(clip="vt2people_320x192_9f.yuv", frames=9, steps=300, batch=8, q=q, lr=1e-2, bytes=x.num_bytes,
               bpp=x.num_bytes * 8 / (x.width * x.height * x.num_frames), psnr=x.psnr, seconds=time.time() - t)
    print(json.dumps(rec), flush=True)
    open("benchmarks/results/lr-by-rung/long.jsonl", "a").write(json.dumps(rec) + "\n")
PY
