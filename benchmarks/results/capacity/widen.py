"""A wider model that computes exactly what the shipped init computes (a capacity-class trial).

Every block gets ``factor`` times its channels. The new output channels of each conv start
small and random (seeded), their FiLM rows at zero (γ = β = 0), and every weight that reads a
new channel (the next conv, the aux heads, the head) at zero: the wide net's frames equal the
shipped init's until fitting moves them. Only train/-derived tensors are used (the shipped init).

    python benchmarks/results/capacity/widen.py FACTOR OUT.safetensors [--std 0.02]
"""
import argparse
import dataclasses

import torch

from metanerv.init_file import DEFAULT_INIT, load_init, save_init
from metanerv.model import NeRV, build_model, frame_times, grid_size_for


def widen(init, factor: float, std: float, seed: int = 0):
    cfg = init.config
    wide_ch = tuple(int(round(c * factor)) for c in cfg.channels)
    wcfg = dataclasses.replace(cfg, channels=wide_ch)
    gen = torch.Generator().manual_seed(seed)
    st = {k: v.clone() for k, v in init.state.items()}
    out = {}
    c_ins = (cfg.grid_channels,) + cfg.channels[:-1]
    w_ins = (cfg.grid_channels,) + wide_ch[:-1]
    for i, (s, co, wco, ci, wci) in enumerate(zip(cfg.strides, cfg.channels, wide_ch, c_ins, w_ins)):
        s2 = s * s
        w, b = st[f"blocks.{i}.conv.weight"], st[f"blocks.{i}.conv.bias"]
        nw = torch.zeros(wco * s2, wci, 3, 3)
        nw[co * s2:, :ci] = torch.randn(((wco - co) * s2, ci, 3, 3), generator=gen) * std  # new outputs
        nw[:co * s2, :ci] = w                       # old outputs read old inputs only
        nb = torch.zeros(wco * s2)
        nb[:co * s2] = b
        out[f"blocks.{i}.conv.weight"], out[f"blocks.{i}.conv.bias"] = nw, nb
        fw, fb = st[f"blocks.{i}.film.weight"], st[f"blocks.{i}.film.bias"]
        nfw = torch.zeros(2 * wco, fw.shape[1])
        nfb = torch.zeros(2 * wco)
        nfw[:co], nfw[wco:wco + co] = fw[:co], fw[co:]
        nfb[:co], nfb[wco:wco + co] = fb[:co], fb[co:]
        out[f"blocks.{i}.film.weight"], out[f"blocks.{i}.film.bias"] = nfw, nfb
        if i < len(cfg.channels) - 1:
            aw = st[f"aux_heads.{i}.weight"]
            naw = torch.zeros(3, wco, 1, 1)
            naw[:, :co] = aw
            out[f"aux_heads.{i}.weight"], out[f"aux_heads.{i}.bias"] = naw, st[f"aux_heads.{i}.bias"]
    hw = st["head.weight"]
    nhw = torch.zeros(3, wide_ch[-1], 3, 3)
    nhw[:, :cfg.channels[-1]] = hw
    out["head.weight"], out["head.bias"] = nhw, st["head.bias"]
    for k in ("grid", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"):
        out[k] = st[k]
    return wcfg, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("factor", type=float)
    ap.add_argument("out")
    ap.add_argument("--std", type=float, default=0.02)
    a = ap.parse_args()
    init = load_init(DEFAULT_INIT)
    wcfg, state = widen(init, a.factor, a.std)
    hw = grid_size_for(144, 176, init.config)
    t = frame_times(list(range(4)), 4)
    with torch.no_grad():
        same = (build_model(init.config, hw, init.state)(t) - build_model(wcfg, hw, state)(t)).abs().max().item()
    assert same < 1e-5, same
    info = {"derived_from": init.digest.hex()[:16], "widen": a.factor, "std": a.std,
            "command": f"python benchmarks/results/capacity/widen.py {a.factor:g} {a.out} --std {a.std:g}"}
    d = save_init(a.out, wcfg, state, info=info)
    print(a.out, wcfg.channels, d.hex()[:16], "max |wide - shipped| =", same)


if __name__ == "__main__":
    main()
