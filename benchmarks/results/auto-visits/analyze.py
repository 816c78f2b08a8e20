"""Tables of the AUTO_VISITS grid: per clip and setting, coded size and the rungs' bpp / PSNR,
then BD-rate and BD-PSNR of each setting against 24 visits (the shipped value).

    PYTHONPATH=. python benchmarks/results/auto-visits/analyze.py > benchmarks/results/auto-visits/tables.md
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from benchmarks.bdrate import bd_psnr, bd_rate

HERE = Path(__file__).resolve().parent
ANCHOR = (24.0, 90)


def load(name: str = "points.jsonl") -> dict:
    pts: dict = defaultdict(lambda: defaultdict(dict))
    for line in (HERE / name).read_text().splitlines():
        r = json.loads(line)
        pts[(r["clip"], r["source"])][(r["visits"], r["min_side"])][r["q"]] = r
    return pts


def main() -> None:
    pts = load()
    qs = sorted({q for by_set in pts.values() for rs in by_set.values() for q in rs})
    print("| clip | source | visits | coded | steps | " + " | ".join(f"q{q} bpp / dB" for q in qs)
          + " | encode s | BD-rate vs 24 | BD-PSNR vs 24 |")
    print("|---|---|---|---|---|" + "---|" * len(qs) + "---|---|---|")
    gains: dict = defaultdict(list)
    for (clip, src), by_set in pts.items():
        anchor = by_set.get(ANCHOR)
        for key in sorted(by_set):
            rs = by_set[key]
            any_r = next(iter(rs.values()))
            cells = [f"{rs[q]['bpp']:.4f} / {rs[q]['psnr']:.2f}" if q in rs else "" for q in qs]
            bdr = bdp = None
            if anchor and key != ANCHOR and len(rs) == len(anchor):
                ra = [anchor[q]["bpp"] for q in sorted(anchor)]
                pa = [anchor[q]["psnr"] for q in sorted(anchor)]
                rt = [rs[q]["bpp"] for q in sorted(rs)]
                pt = [rs[q]["psnr"] for q in sorted(rs)]
                bdr, bdp = bd_rate(ra, pa, rt, pt), bd_psnr(ra, pa, rt, pt)
                gains[key].append((bdr, bdp))
            fmt = lambda v, f: "n/a" if v is None else f.format(v)  # noqa: E731
            print(f"| {clip} | {src} | {key[0]:g} (min {key[1]}) | {any_r['coded']} | {any_r['steps']} | "
                  + " | ".join(cells) + f" | {any_r['encode_s']} | {fmt(bdr, '{:+.1f} %')} | {fmt(bdp, '{:+.2f} dB')} |")
    print()
    for key, vals in sorted(gains.items()):
        r = [v for v, _ in vals if v is not None]
        p = [v for _, v in vals if v is not None]
        print(f"- visits {key[0]:g} (min side {key[1]}) vs 24: mean BD-rate "
              f"{sum(r) / len(r):+.1f} % ({len(r)}/{len(vals)} clips), mean BD-PSNR {sum(p) / len(p):+.2f} dB"
              if r and p else f"- visits {key[0]:g}: no overlap")
    print()
    print("Upper hull of every tried (visits, rung) point per clip, floor 90 px (log bpp vs PSNR), "
          "cheapest first:\n")
    for clip, pts_c in hull_points().items():
        print(f"- {clip}: " + ", ".join(f"{v:g} visits q{q} ({b:.4f}, {p:.2f})" for v, q, b, p in pts_c))


def hull_points(name: str = "points.jsonl") -> dict[str, list[tuple[float, int, float, float]]]:
    """Per clip, the points on the upper concave hull of PSNR over log bpp, rising only."""
    by_clip: dict = defaultdict(set)
    for line in (HERE / name).read_text().splitlines():
        r = json.loads(line)
        if r["min_side"] == 90:
            by_clip[r["clip"]].add((math.log(r["bpp"]), r["psnr"], r["visits"], r["q"]))
    out = {}
    for clip, pts in by_clip.items():
        hull: list = []
        for p in sorted(pts):
            while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (p[1] - hull[-2][1])
                                      - (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0])) >= 0:
                hull.pop()
            hull.append(p)
        rising, best = [], -math.inf
        for x, y, v, q in hull:
            if y > best:
                rising.append((v, q, math.exp(x), y))
                best = y
        out[clip] = rising
    return out


if __name__ == "__main__":
    main()
