"""BD-rate / BD-PSNR (RGB PSNR) of nervc runs against the default's `../v4-guard/` run, per clip,
whatever the codec's name (the bench table's --versus pairs equal names only):

    python benchmarks/results/v4-adam/compare.py v4-adam:nervc-meta-adam v4-c8-metasgd:nervc-meta
"""
import sys
from pathlib import Path

import numpy as np

from benchmarks.bdrate import bd_psnr, bd_rate
from benchmarks.results import curves as run_curves
from benchmarks.results import load_records

RESULTS = Path(__file__).resolve().parents[1]


def curves(run: str, codec: str) -> dict[str, tuple[list[float], list[float]]]:
    """{clip: (bpps, PSNRs)} of ``codec`` in the run ``run`` (benchmarks.results.curves)."""
    return {clip: ([r["bpp"] for r in by[codec]], [r["psnr_rgb"] for r in by[codec]])
            for clip, by in run_curves(load_records(RESULTS / run)).items() if codec in by}


anchor = curves("v4-guard", "nervc-meta")
print("| clip | " + " | ".join(sys.argv[1:]) + " |")
print("|---|" + "---|" * len(sys.argv[1:]))
cols = [curves(*a.split(":")) for a in sys.argv[1:]]
means = [[] for _ in cols]
for clip in sorted(anchor):
    cells = []
    for i, col in enumerate(cols):
        ra, pa = anchor[clip]
        rt, pt = col[clip]
        br, bp = bd_rate(ra, pa, rt, pt), bd_psnr(ra, pa, rt, pt)
        means[i].append((br, bp))
        cells.append(f"{br:+.1f} % / {bp:+.2f} dB" if br is not None else "n/a")
    print(f"| {clip} | " + " | ".join(cells) + " |")
print("| **mean** | " + " | ".join(
    f"{np.mean([b for b, _ in m if b is not None]):+.1f} % / {np.mean([p for _, p in m if p is not None]):+.2f} dB"
    for m in means) + " |")
