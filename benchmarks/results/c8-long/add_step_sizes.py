"""An init's tensors with the default init's learned per-tensor step sizes attached (the
c8-learned ones, benchmarks/results/c8-metasgd/): one scalar per tensor name, so they carry over
to a continuation of the same shape; the digest covers the weights only.

    PYTHONPATH=. python benchmarks/results/c8-long/add_step_sizes.py IN.safetensors OUT.safetensors
"""
import sys

from metanerv.init_file import load_init, save_init

SOURCE = "metanerv/inits/default.safetensors"
src, out = sys.argv[1], sys.argv[2]
init, learned = load_init(src), load_init(SOURCE)
rec = dict(learned.metasgd)
missing = set(init.state) - set(rec["log_lrs"])
if missing:
    raise SystemExit(f"{SOURCE} has no step size for {sorted(missing)}")
rec["log_lrs"] = {k: rec["log_lrs"][k] for k in init.state}
rec["source"] = f"{SOURCE} (id {learned.short_id}), learned in benchmarks/results/c8-metasgd/"
save_init(out, init.config, init.state, info=init.info, metasgd=rec)
print(out, load_init(out).short_id)
