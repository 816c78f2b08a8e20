"""A/B of fit variants at a preset: RD points (bytes, PSNR) per clip and rung -> JSON lines."""
import sys, json, time, os
import torch
import metanerv.rate as R
import codec.encoder as E
variant, clip, nf, preset, qs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]

def best_quantize(self, flat, noise=None):
    st = self.steps().index_select(0, self.segment)
    x = flat / st
    levels = R.round_ste(x)
    sc = self.best_log_scales(levels.detach()).exp().clamp(min=0.02).index_select(0, self.segment)
    bits = R.laplace_bits(x + noise if noise is not None else levels, sc).sum()
    return levels * st, bits

for v in variant.split("+"):
    if v == "base": pass
    elif v == "best": R.RateModel.quantize_flat = best_quantize
    elif v.startswith("sf"): R.STEP_FRACTION = 1 / float(v[2:])
    elif v.startswith("is"): R.INIT_SCALE = float(v[2:])
    elif v.startswith("ramp"):
        import codec.finetune as F
        F.LAM_START = 1 / float(v[4:])
    elif v.startswith("rlr"):
        import codec.finetune as F
        F.FitSettings.rate_lr = float(v[3:])
    else: raise SystemExit("unknown variant " + v)
for q in qs.split(","):
    path = f"/tmp/exp/ab/{variant}_{os.path.basename(clip)}_{nf}_{preset}_q{q}.nerv"
    t = time.time()
    r = E.encode(clip, path, quality=int(q), preset=preset, frames=slice(0, nf), progress=False, overwrite=True)
    rec = dict(variant=variant, clip=os.path.basename(clip), frames=nf, preset=preset, q=int(q), bytes=r.num_bytes,
               bpp=r.num_bytes * 8 / (r.width * r.height * r.num_frames), psnr=r.psnr, seconds=time.time() - t)
    print(json.dumps(rec), flush=True)
    with open(out, "a") as f: f.write(json.dumps(rec) + "\n")
