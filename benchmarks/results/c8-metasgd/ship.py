"""The default init with the c8-learned step sizes: the same tensors and provenance (so the same
id), the Meta-SGD record of benchmarks/inits/c8_metasgd.safetensors in place of metasgd_warm's.

    PYTHONPATH=. python benchmarks/results/c8-metasgd/ship.py metanerv/inits/default.safetensors
"""
import sys

from metanerv.init_file import load_init, save_init

SOURCE = "benchmarks/inits/c8_metasgd.safetensors"
out = sys.argv[1]
init, learned = load_init(out), load_init(SOURCE)
if init.digest != learned.digest:
    raise SystemExit(f"{SOURCE} holds other tensors than {out}")
rec = dict(learned.metasgd)
rec["log_lrs"] = {k: rec["log_lrs"][k] for k in init.state}
rec["source"] = SOURCE + " (benchmarks/results/c8-metasgd/)"
save_init(out, init.config, init.state, info=init.info, metasgd=rec)
print(out, load_init(out).short_id)
