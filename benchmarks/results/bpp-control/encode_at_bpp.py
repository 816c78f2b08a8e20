import sys, json, time, os
import codec.encoder as E
clip, nf, targets, out, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
for tb in targets.split(","):
    t = time.time()
    r = E.encode(clip, f"/tmp/exp/ab/v2_{os.path.basename(clip)}_{tb}.nerv", bpp=float(tb), frames=slice(0, nf), progress=False, overwrite=True)
    rec = dict(variant=tag, clip=os.path.basename(clip), frames=nf, target=float(tb), bytes=r.num_bytes,
               bpp=r.num_bytes * 8 / (r.width * r.height * r.num_frames), psnr=r.psnr, lam=r.lam, seconds=time.time() - t)
    print(json.dumps(rec), flush=True)
    with open(out, "a") as f: f.write(json.dumps(rec) + "\n")
