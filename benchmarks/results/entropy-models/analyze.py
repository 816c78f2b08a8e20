"""How many bits would a richer weight entropy model save on the files nervc writes? (issue 11)

Reads written `.nerv` files, decodes every tensor's integer levels and prices them under:

* ``file``: the ANS payload the file holds (its words);
* ``laplace``: the format's model, one Laplace per tensor (`codec.entropy.fit_laplace`, exact table);
* ``spike``: two parameters per tensor, P(0) and a geometric tail (ideal code length);
* ``iid``: the empirical entropy of each tensor's levels (a lower bound for any per-tensor iid model);
* ``chan``: one Laplace per output channel (row of the weight), parameters free (an oracle: the
  side information it would need, 2 bytes per channel, is counted in ``chan+side``).

    PYTHONPATH=. python benchmarks/results/entropy-models/analyze.py DIR... > table.md
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from bitstreams.format import BitstreamReader
from codec.entropy import LaplaceModel, decode_tensors, fit_laplace, model_bits


def laplace_bits(lv: np.ndarray) -> float:
    return model_bits(lv, fit_laplace(lv)) if lv.size and np.abs(lv).max() > 0 else 0.0


def spike_bits(lv: np.ndarray) -> float:
    a = np.abs(lv)
    n, nz = a.size, int((a > 0).sum())
    if nz == 0:
        return 0.0
    n0 = n - nz
    m = float((a[a > 0] - 1).sum())
    p0 = n0 / n
    bits = -(n0 * math.log2(p0) if n0 else 0.0) - nz * math.log2(1 - p0) + nz  # + one sign bit each
    if m > 0:
        t = m / (nz + m)
        bits += -nz * math.log2(1 - t) - m * math.log2(t)
    return bits


def iid_bits(lv: np.ndarray) -> float:
    _, c = np.unique(lv, return_counts=True)
    p = c / c.sum()
    return float(-(c * np.log2(p)).sum())


def main(paths: list[str]) -> None:
    files = sorted(p for d in paths for p in Path(d).rglob("*.nerv"))
    tot = dict(file=0.0, laplace=0.0, spike=0.0, iid=0.0, chan=0.0, chan_side=0.0, bytes=0)
    print("| file | bytes | payload B | laplace | spike | iid | per-channel | per-channel + side |")
    print("|---|---|---|---|---|---|---|---|")
    for f in files:
        r = BitstreamReader(f)
        row = dict(file=0.0, laplace=0.0, spike=0.0, iid=0.0, chan=0.0, chan_side=0.0)
        for gi in range(len(r.sections)):
            g = r.read_gop(gi)
            sizes = [math.prod(s) for _, s in r.shapes]
            levels = decode_tensors(g.words, [LaplaceModel(t.K, t.R) for t in g.tensors], sizes)
            row["file"] += 32 * len(g.words)
            for (name, shape), lv in zip(r.shapes, levels):
                row["laplace"] += laplace_bits(lv)
                row["spike"] += spike_bits(lv)
                row["iid"] += iid_bits(lv) if np.abs(lv).max() > 0 else 0.0
                rows = lv.reshape(shape[0], -1) if len(shape) > 1 and shape[0] > 1 else lv.reshape(1, -1)
                cb = sum(laplace_bits(x) for x in rows)
                side = 16 * (rows.shape[0] - 1) if np.abs(lv).max() > 0 else 0
                row["chan"] += cb
                row["chan_side"] += cb + side
        size = f.stat().st_size
        for k in row:
            tot[k] += row[k]
        tot["bytes"] += size
        print(f"| {f.parent.parent.name}/{f.stem} | {size} | {row['file'] / 8:.0f} | "
              + " | ".join(f"{row[k] / row['file'] - 1:+.1%}" for k in ("laplace", "spike", "iid", "chan", "chan_side")) + " |")
    print(f"| **all** | {tot['bytes']} | {tot['file'] / 8:.0f} | "
          + " | ".join(f"{tot[k] / tot['file'] - 1:+.1%}" for k in ("laplace", "spike", "iid", "chan", "chan_side")) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
