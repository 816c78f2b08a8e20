"""The floor check at another preset: per clip, the rungs of ``floor4@P`` and ``floor1.5@P``,
what the first rung above the old floor buys over the old top (dB per e-fold of bytes: the
lam-floor trial's threshold is 1) and BD-rate over each variant's whole q5-q8 curve.

    PYTHONPATH=. python benchmarks/results/top-rung/fast_analyze.py [fast_points.jsonl]
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from benchmarks.trials import curve_bd, distinct_rungs, load_points


def main(argv: list[str]) -> int:
    pts = load_points(Path(argv[0]) if argv else Path(__file__).with_name("fast_points.jsonl"))
    print("| clip | variant | q5–q8: bytes / dB | new top over old top | BD-rate vs floor 4 |")
    print("|---|---|---|---|---|")
    slopes, bds = [], []
    for clip in sorted(pts):
        vs = sorted(pts[clip], key=lambda v: v.startswith("floor1.5"))
        old = distinct_rungs(pts[clip][vs[0]])
        for v in vs:
            rs = distinct_rungs(pts[clip][v])
            cells = ", ".join(f"q{r['q']} {r['bytes']:,} / {r['psnr']:.2f}" for r in rs)
            gain = bd = ""
            if v != vs[0]:
                top, otop = rs[-1], old[-1]
                if top["bytes"] != otop["bytes"]:
                    d, e = top["psnr"] - otop["psnr"], math.log(top["bytes"] / otop["bytes"])
                    slopes.append(d / e)
                    gain = f"+{d:.2f} dB for ×{top['bytes'] / otop['bytes']:.2f} ({d / e:.2f} dB per e-fold)"
                b = curve_bd(old, rs)[0]
                if b is not None:
                    bds.append(b)
                    bd = f"{b:+.1f} %"
            print(f"| {clip} | {v} | {cells} | {gain} | {bd} |")
    if slopes:
        print(f"\nnew top: {min(slopes):.2f}–{max(slopes):.2f} dB per e-fold (mean {sum(slopes) / len(slopes):.2f}, "
              f"{sum(s >= 1 for s in slopes)}/{len(slopes)} at >= 1); BD-rate mean {sum(bds) / len(bds):+.1f} % ({len(bds)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
