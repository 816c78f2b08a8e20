"""Tables of the init-vs-random check: every point per clip, and BD-rate / BD-PSNR of the
shipped init against random init over the quality range where random init makes a picture.

Random init's points below the shipped init's lowest PSNR here (its "dead" points: the fit kept
almost every weight at level 0) are left out of its curve, since PCHIP between a dead point and
a live one would draw a curve the codec cannot reach. The shipped init's curve is every weight
measured (all of them make a picture).

    PYTHONPATH=. python benchmarks/results/init-vs-random/analyze.py > tables.md
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.trials import curve_bd

HERE = Path(__file__).parent


def load() -> dict[str, dict[str, dict[float, dict]]]:
    pts: dict = defaultdict(lambda: defaultdict(dict))
    for f in sorted(HERE.glob("points*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                pts[r["clip"]][r["variant"]][r["lam"]] = r
    return pts


def main(argv: list[str]) -> int:
    pts = load()
    lams = sorted({lam for by in pts.values() for v in by.values() for lam in v}, reverse=True)
    print("| clip | init | " + " | ".join(f"lam {lam:g}: bpp / dB" for lam in lams) + " |")
    print("|---|---|" + "---|" * len(lams))
    for clip in sorted(pts):
        for v in ("default", "random"):
            rs = pts[clip].get(v, {})
            cells = [f"{rs[lam]['bpp']:.4f} / {rs[lam]['psnr']:.2f}" if lam in rs else "" for lam in lams]
            print(f"| {clip} | {v} | " + " | ".join(cells) + " |")
    print("\n| clip | random's live points | BD-rate shipped vs random | BD-PSNR | PSNR range compared |")
    print("|---|---|---|---|---|")
    got = []
    for clip in sorted(pts):
        d = sorted(pts[clip]["default"].values(), key=lambda r: r["bpp"])
        floor = min(r["psnr"] for r in d)
        live = sorted((r for r in pts[clip]["random"].values() if r["psnr"] > floor), key=lambda r: r["bpp"])
        if len(live) < 2:
            print(f"| {clip} | {len(live)} | n/a | n/a | |")
            continue
        bdr, bdp = curve_bd(live, d)
        pa, pt = [r["psnr"] for r in live], [r["psnr"] for r in d]
        lo, hi = max(min(pa), min(pt)), min(max(pa), max(pt))
        got.append((bdr, bdp))
        print(f"| {clip} | {len(live)} | {'n/a' if bdr is None else f'{bdr:+.1f} %'} | "
              f"{'n/a' if bdp is None else f'{bdp:+.2f} dB'} | {lo:.2f}–{hi:.2f} dB |")
    rs = [g[0] for g in got if g[0] is not None]
    if rs:
        print(f"\nmean BD-rate of the shipped init against random init where both make a picture: "
              f"{sum(rs) / len(rs):+.1f} % ({len(rs)}/{len(pts)} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
