"""The shipped init with its last block cut from 12 to 8 channels (a decode-speed candidate).

Keeps the 8 channels whose head weights have the largest norm (conv rows, FiLM rows, head
columns), drops the rest: not function-preserving, the fit recovers what is lost.

    python benchmarks/results/capacity/narrow_last.py KEEP OUT.safetensors
"""
import dataclasses
import sys

import torch

from metanerv.init_file import DEFAULT_INIT, load_init, save_init

keep, out = int(sys.argv[1]), sys.argv[2]
init = load_init(DEFAULT_INIT)
cfg = init.config
last = len(cfg.channels) - 1
c, s2 = cfg.channels[-1], cfg.strides[-1] ** 2
st = {k: v.clone() for k, v in init.state.items()}
order = st["head.weight"].pow(2).sum(dim=(0, 2, 3)).argsort(descending=True)[:keep].sort().values
rows = (order[:, None] * s2 + torch.arange(s2)[None, :]).reshape(-1)  # conv outputs c*s2 + k
st[f"blocks.{last}.conv.weight"] = st[f"blocks.{last}.conv.weight"][rows]
st[f"blocks.{last}.conv.bias"] = st[f"blocks.{last}.conv.bias"][rows]
film_rows = torch.cat([order, order + c])
st[f"blocks.{last}.film.weight"] = st[f"blocks.{last}.film.weight"][film_rows]
st[f"blocks.{last}.film.bias"] = st[f"blocks.{last}.film.bias"][film_rows]
st["head.weight"] = st["head.weight"][:, order]
ncfg = dataclasses.replace(cfg, channels=cfg.channels[:-1] + (keep,))
d = save_init(out, ncfg, st, info={"derived_from": init.digest.hex()[:16], "kept_last_channels": order.tolist(),
                                   "command": f"python benchmarks/results/capacity/narrow_last.py {keep} {out}"})
print(out, ncfg.channels, order.tolist(), d.hex()[:16])
