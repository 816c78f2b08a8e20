"""What the written streams of a bench run spend on their levels, under the entropy coder's
parameter search then and now, and against richer models (issue 11, 2026-11-29).

For every ``.nerv`` of ``RESULTS/<clip>/nervc-meta/``: the levels are read back (the decoder's
path), then coded again with the current :func:`codec.entropy.fit_laplace` (same levels, so the
same picture) and the new file size is the old one minus the change in ANS words. Also printed:
the in-loop count of the payload (:meth:`metanerv.rate.RateModel.coded_bits`) against the re-coded
payload, and two models the format does not have, as bounds on what a richer entropy model could
still buy: (a) an adaptive significance map (Krichevsky-Trofimov, free) + a geometric magnitude
with its ideal parameter, per tensor; (b) a Laplace per output channel with its ideal scale plus
8 bits of side information per channel.

    PYTHONPATH=. python benchmarks/results/entropy-r/recode.py benchmarks/results/v4-c8-metasgd > recode.md
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

from bitstreams.format import BitstreamReader
from codec.entropy import LaplaceModel, decode_tensors, encode_tensors, fit_laplace, model_bits
from metanerv.rate import RateModel

R_GRID = np.exp(-0.5 / np.logspace(math.log10(0.02), 4.0, 400))


def gop_levels(path: Path):
    """Per GOP: (records, [(name, shape, levels)]) as the decoder reads them."""
    r = BitstreamReader(path)
    for i in range(len(r.sections)):
        g = r.read_gop(i)
        models = [LaplaceModel(t.K, t.R) for t in g.tensors]
        lv = decode_tensors(g.words, models, [math.prod(s) for _, s in r.shapes])
        yield g, models, [(n, s, v.reshape(s)) for (n, s), v in zip(r.shapes, lv)]


def kt_bits(nz: int, n: int) -> float:
    """Code length of a binary sequence with ``nz`` ones in ``n`` under the KT estimator."""
    return -(math.lgamma(nz + .5) + math.lgamma(n - nz + .5) - 2 * math.lgamma(.5) - math.lgamma(n + 1)) / math.log(2)


def significance_bound(lv: np.ndarray) -> float:
    a = np.abs(lv).ravel()
    nz = int((a > 0).sum())
    if nz == 0:
        return 0.0
    m = float((a[a > 0] - 1).sum())
    q = m / (m + nz)
    geo = -(nz * math.log2(1 - q) + (m * math.log2(q) if m > 0 else 0.0))
    return kt_bits(nz, a.size) + nz + geo


def laplace_ideal(lv: np.ndarray) -> float:
    a = np.abs(lv).ravel()
    K = int(a.max()) if a.size else 0
    if K == 0:
        return 0.0
    n0, nz, m1, r = (a == 0).sum(), (a > 0).sum(), float((a[a > 0] - 1).sum()), R_GRID
    b = -(n0 * np.log2(1 - r) + nz * np.log2(0.5 * r * (1 - r * r)) + m1 * np.log2(r * r))
    return float((b + a.size * np.log2(1 - r ** (2 * K + 1))).min())


def main(argv: list[str]) -> int:
    root = Path(argv[0])
    print("| clip | rung | file B | re-coded B | change | payload B then / now | in-loop count / payload | KT significance bound | Laplace per out-channel |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in sorted(root.glob("*/nervc-meta/q*.nerv")):
        size = f.stat().st_size
        then = now = est = kt = chan = 0.0
        words_then = words_now = 0
        for g, models, tensors in gop_levels(f):
            fresh = [fit_laplace(v) for _, _, v in tensors]
            words_then += len(g.words)
            words_now += len(encode_tensors([v.ravel() for _, _, v in tensors], fresh))
            for (_, s, v), m0, m1 in zip(tensors, models, fresh):
                if m1.K == 0:
                    continue
                b = model_bits(v.ravel(), m1)
                then += model_bits(v.ravel(), m0)
                now += b
                kt += significance_bound(v)
                per_ch = (sum(laplace_ideal(v[i]) for i in range(s[0])) + 8 * s[0]) if len(s) >= 2 and s[0] >= 8 else b
                chan += min(b, per_ch)
            res = {n: torch.zeros(s) for n, s, _ in tensors}
            rm = RateModel(res, {k: 0.1 for k in res})
            est += float(rm.coded_bits(torch.cat([torch.from_numpy(v.astype(np.float32)).ravel() for _, _, v in tensors])))
        new_size = size - 4 * (words_then - words_now)
        pct = lambda a, b: f"{100 * (a / b - 1):+.1f} %" if b else "n/a"
        print(f"| {f.parts[-3]} | {f.stem} | {size} | {new_size} | {pct(new_size, size)} | {then / 8:.0f} / {now / 8:.0f} | "
              f"{pct(est, now)} | {pct(kt, now)} | {pct(chan, now)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
