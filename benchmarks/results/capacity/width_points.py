"""RD points of one init at fixed steps: q rungs fitted as one ladder -> JSON lines.

    python benchmarks/results/capacity/width_points.py NAME INIT CLIP FRAMES STEPS BATCH Q1,Q2 OUT.jsonl

STEPS 0: the default preset (medium) sets steps and batch from the clip's size.
"""
import json
import os
import sys
import time

import codec.encoder as E

name, init, clip, nf, steps, batch, qs, out = sys.argv[1:9]
nf, steps, batch = int(nf), int(steps), int(batch)
os.makedirs("/tmp/exp/width", exist_ok=True)
paths = {int(q): f"/tmp/exp/width/{name}_{os.path.basename(clip)}_{nf}_{steps}x{batch}_q{q}.nerv" for q in qs.split(",")}
t = time.time()
res = E.encode_ladder(clip, paths, init=init, steps=steps or None, batch=batch if steps else None,
                      frames=slice(0, nf), progress=False, overwrite=True)
sec = time.time() - t
for q, r in sorted(res.items()):
    rec = dict(init=name, clip=os.path.basename(clip), frames=nf, steps=steps or "medium", batch=batch if steps else "medium", q=q, bytes=r.num_bytes,
               bpp=r.num_bytes * 8 / (r.width * r.height * r.num_frames), psnr=r.psnr, ladder_seconds=sec)
    print(json.dumps(rec), flush=True)
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")
