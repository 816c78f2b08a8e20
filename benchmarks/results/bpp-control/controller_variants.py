"""--bpp controller variants; record file bpp and PSNR."""
import sys, json, time, os, math
import torch
from torch.func import functional_call
import codec.encoder as E
from codec.finetune import wsd_lr, decay_start, NOISE_SEED
from metanerv.losses import reconstruction_loss
from metanerv.model import frame_times
V = dict(kv.split("=") for kv in sys.argv[1].split(","))  # e.g. start=decay,gain=0.05,prior=1,clip=2
def run_fit(model, frames, base, state, s, until, pixels, progress=True, desc="fit", stats_every=10):
    n = frames.shape[0]; dev = frames.device; rate = state.rate
    base_flat = rate.flatten({k: base[k].to(dev) for k in rate.names}) if base is not None else None
    warmup, decay_from = max(s.steps // 20, 1), decay_start(s)
    lam = state.lam
    if s.target_bpp and state.step == 0 and V.get("prior") == "1":
        lam = (0.31 / s.target_bpp) ** (1 / 0.85)
    gain = float(V.get("gain", 0.05)); clipr = float(V.get("clip", 1e9))
    c0 = decay_from if V.get("start") == "decay" else 0
    for step in range(state.step, until):
        f = wsd_lr(step, s.steps, 1.0, warmup=warmup, decay_from=decay_from)
        state.opt.param_groups[0]["lr"] = s.lr * f
        state.opt.param_groups[1]["lr"] = s.rate_lr * f
        idx = torch.randperm(n, generator=state.gen)[: s.batch] if n > s.batch else torch.arange(n)
        target = frames[idx]
        state.noise.manual_seed(s.seed * NOISE_SEED + step)
        noise = torch.rand(state.resid.shape, generator=state.noise).sub_(0.5)
        q, bits = rate.quantize_flat(state.resid, noise)
        weights = rate.unflatten(base_flat + q if base_flat is not None else q)
        pred = functional_call(model, weights, (frame_times(idx, n),))
        loss = reconstruction_loss(pred, target, s.l1_weight, fused=True) + lam * bits / pixels
        state.opt.zero_grad(set_to_none=True); loss.backward(); state.opt.step()
        if s.target_bpp and step >= c0:
            with torch.no_grad():
                bpp = float(rate.coded_bits(rate.levels_flat(state.resid))) / pixels
            r = min(max(bpp / s.target_bpp, 1 / clipr), clipr)
            lam = min(max(lam * r ** gain, 1e-4), 1e4)
    state.lam = lam; state.step = until
    return state
E.run_fit = run_fit
clip, nf, targets, out = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
for tb in targets.split(","):
    path = f"/tmp/exp/ab/bpp_{os.path.basename(clip)}_{tb}.nerv"
    t = time.time()
    r = E.encode(clip, path, bpp=float(tb), frames=slice(0, nf), progress=False, overwrite=True)
    rec = dict(variant=sys.argv[1], clip=os.path.basename(clip), frames=nf, target=float(tb), bytes=r.num_bytes,
               bpp=r.num_bytes * 8 / (r.width * r.height * r.num_frames), psnr=r.psnr, lam=r.lam, seconds=time.time() - t)
    print(json.dumps(rec), flush=True)
    with open(out, "a") as f: f.write(json.dumps(rec) + "\n")
