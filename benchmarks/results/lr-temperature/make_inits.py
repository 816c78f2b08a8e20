"""The shipped init with its Meta-SGD step sizes sharpened or flattened by a temperature:
``log_lr' = centre + alpha * (log_lr - centre)`` (alpha 0 = plain Adam, 1 = as shipped). The
tensors stay the default's, so the id (and every stream) is the default's.

    PYTHONPATH=. python benchmarks/results/lr-temperature/make_inits.py OUTDIR ALPHA [ALPHA ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

from metanerv.init_file import load_init, save_init

DEFAULT = "metanerv/inits/default.safetensors"


def main(argv: list[str]) -> int:
    out, alphas = Path(argv[0]), [float(a) for a in argv[1:]]
    out.mkdir(parents=True, exist_ok=True)
    init = load_init(DEFAULT)
    logs = init.metasgd["log_lrs"]
    centre = sum(logs.values()) / len(logs)
    for a in alphas:
        rec = dict(init.metasgd)
        rec["log_lrs"] = {k: centre + a * (v - centre) for k, v in logs.items()}
        rec["source"] = f"{DEFAULT} step sizes at temperature alpha={a}"
        path = out / f"alpha{a}.safetensors"
        save_init(path, init.config, init.state, info=init.info, metasgd=rec)
        print(path, load_init(path).short_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
