"""Prototype: fit on random grid-aligned crops (with an exact 2-cell halo) instead of whole frames."""
import sys, json, time, os
import torch
from torch.func import functional_call
import codec.encoder as E
import codec.finetune as F
import metanerv.rate as R
from codec.finetune import wsd_lr, decay_start, STATS_EVERY, NOISE_SEED
from metanerv.losses import reconstruction_loss
from metanerv.model import frame_times
CELLS = int(os.environ.get("CROP_CELLS", "6")); HALO = 2

def run_fit(model, frames, base, state, s, until, pixels, progress=True, desc="fit", stats_every=STATS_EVERY):
    n = frames.shape[0]; dev = frames.device; rate = state.rate
    base_flat = rate.flatten({k: base[k].to(dev) for k in rate.names}) if base is not None else None
    lam = state.lam
    warmup, decay_from = max(s.steps // 20, 1), decay_start(s)
    gh, gw = model.grid_hw; S = model.config.total_stride
    ch, cw = min(CELLS, gh), min(CELLS, gw)
    assert rate.names[0] == "grid"; gshape = rate.shapes[0]; gsize = rate.sizes[0]
    for step in range(state.step, until):
        f = wsd_lr(step, s.steps, 1.0, warmup=warmup, decay_from=decay_from)
        state.opt.param_groups[0]["lr"] = s.lr * f
        state.opt.param_groups[1]["lr"] = s.rate_lr * f
        idx = torch.randperm(n, generator=state.gen)[: s.batch] if n > s.batch else torch.arange(n)
        y0 = int(torch.randint(0, gh - ch + 1, (1,), generator=state.gen)); x0 = int(torch.randint(0, gw - cw + 1, (1,), generator=state.gen))
        ya, yb, xa, xb = max(y0 - HALO, 0), min(y0 + ch + HALO, gh), max(x0 - HALO, 0), min(x0 + cw + HALO, gw)
        target = frames[idx][:, :, y0 * S:(y0 + ch) * S, x0 * S:(x0 + cw) * S]
        state.noise.manual_seed(s.seed * NOISE_SEED + step)
        noise = torch.rand(state.resid.shape, generator=state.noise).sub_(0.5)
        st = rate.steps().index_select(0, rate.segment)
        x = state.resid / st
        lv = R.round_ste(x)
        q = lv * st
        be = R.laplace_bits(x + noise, rate.scales().index_select(0, rate.segment))
        g = be[:gsize].view(gshape)
        frac = (gh * gw) / ((yb - ya) * (xb - xa))
        bits = be[gsize:].sum() + g[:, :, ya:yb, xa:xb].sum() * frac
        weights = rate.unflatten(base_flat + q if base_flat is not None else q)
        weights = dict(weights); weights["grid"] = weights["grid"][:, :, ya:yb, xa:xb]
        pred = functional_call(model, weights, (frame_times(idx, n),))
        oy, ox = (y0 - ya) * S, (x0 - xa) * S
        pred = pred[:, :, oy:oy + ch * S, ox:ox + cw * S]
        dist = reconstruction_loss(pred, target, s.l1_weight, fused=True)
        loss = dist + lam * bits / pixels
        state.opt.zero_grad(set_to_none=True); loss.backward(); state.opt.step()
        if os.environ.get('DBG') and step % 5 == 0: print(step, y0, x0, float(dist), float(bits)/pixels, float(pred.mean()), float(target.mean()), flush=True)
    state.step = until
    return state

if __name__ == "__main__":
    variant, clip, nf, preset, qs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
    mult = float(sys.argv[7]) if len(sys.argv) > 7 else 1.0
    steps = None
    if variant.startswith("crop"):
        E.run_fit = run_fit
    from codec.presets import schedule
    from nervcore.video_io import open_video
    src = open_video(clip)
    sch = schedule(preset, src.width, src.height, nf)
    steps = int(round(sch.steps * mult))
    for q in qs.split(","):
        path = f"/tmp/exp/ab/{variant}_{os.path.basename(clip)}_{nf}_{preset}_{mult}_q{q}.nerv"
        t = time.time()
        r = E.encode(clip, path, quality=int(q), preset=preset, steps=steps, frames=slice(0, nf), progress=False, overwrite=True)
        rec = dict(variant=variant, cells=CELLS, mult=mult, steps=steps, clip=os.path.basename(clip), frames=nf, preset=preset, q=int(q), bytes=r.num_bytes,
                   bpp=r.num_bytes * 8 / (r.width * r.height * r.num_frames), psnr=r.psnr, seconds=time.time() - t)
        print(json.dumps(rec), flush=True)
        with open(out, "a") as f: f.write(json.dumps(rec) + "\n")
