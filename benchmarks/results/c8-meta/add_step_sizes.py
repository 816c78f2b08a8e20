"""An init's tensors with metasgd_warm's learned per-tensor log step sizes attached.

The step sizes are one scalar per tensor name, so they carry over to a model whose tensors have
other widths (c8); the digest covers the weights only, so the id stays the input's.

    python benchmarks/results/c8-meta/add_step_sizes.py IN.safetensors OUT.safetensors
"""
import json
import sys

from safetensors import safe_open

from metanerv.init_file import METASGD_KEY, load_init, save_init

SOURCE = "benchmarks/inits/metasgd_warm.safetensors"
src, out = sys.argv[1], sys.argv[2]
with safe_open(SOURCE, "pt") as f:
    rec = json.loads(f.metadata()[METASGD_KEY])
init = load_init(src)
missing = set(init.state) - set(rec["log_lrs"])
if missing:
    raise SystemExit(f"{SOURCE} has no step size for {sorted(missing)}")
save_init(out, init.config, init.state, info=init.info,
          metasgd={"log_lrs": {k: rec["log_lrs"][k] for k in init.state}, "source": SOURCE})
print(out, load_init(out).short_id)
