"""The shipped init's tensors with metasgd_warm's learned log step sizes (same digest: weights only)."""
import json
import sys

from safetensors import safe_open

from metanerv.init_file import DEFAULT_INIT, METASGD_KEY, load_init, save_init

with safe_open("benchmarks/inits/metasgd_warm.safetensors", "pt") as f:
    rec = json.loads(f.metadata()[METASGD_KEY])
shipped = load_init(DEFAULT_INIT)
save_init(sys.argv[1], shipped.config, shipped.state, info=shipped.info,
          metasgd={"log_lrs": rec["log_lrs"], "source": "benchmarks/inits/metasgd_warm.safetensors"})
print(sys.argv[1], load_init(sys.argv[1]).short_id)
