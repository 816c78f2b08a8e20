"""Tables of the fit-loss grid: per clip and distortion the rungs' bpp / PSNR / MS-SSIM, then
BD-rate and BD-quality of each distortion against the shipped ``l1ssim``, in PSNR and in MS-SSIM.

    PYTHONPATH=. python benchmarks/results/fit-loss/analyze.py > benchmarks/results/fit-loss/tables.md
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from benchmarks.bdrate import bd_psnr, bd_rate

HERE = Path(__file__).resolve().parent
ANCHOR = "l1ssim"


def load(name: str = "points.jsonl") -> dict:
    pts: dict = defaultdict(lambda: defaultdict(dict))
    for line in (HERE / name).read_text().splitlines():
        r = json.loads(line)
        pts[r["clip"]][r["variant"]][r["q"]] = r
    return pts


def _fmt(v, f: str) -> str:
    return "n/a" if v is None else f.format(v)


def main() -> None:
    pts = load()
    qs = sorted({q for by_v in pts.values() for rs in by_v.values() for q in rs})
    print("| clip | distortion | steps | " + " | ".join(f"q{q} bpp / dB / MS-SSIM" for q in qs)
          + " | BD-rate PSNR | BD-PSNR | BD-rate MS-SSIM |")
    print("|---|---|---|" + "---|" * len(qs) + "---|---|---|")
    gains: dict = defaultdict(list)
    for clip, by_v in pts.items():
        anchor = by_v.get(ANCHOR)
        for v in sorted(by_v, key=lambda k: (k != ANCHOR, k)):
            rs = by_v[v]
            cells = [f"{rs[q]['bpp']:.4f} / {rs[q]['psnr']:.2f} / {rs[q]['ms_ssim']:.4f}" if q in rs else ""
                     for q in qs]
            bdr = bdp = bds = None
            if anchor and v != ANCHOR and sorted(rs) == sorted(anchor):
                ra = [anchor[q]["bpp"] for q in sorted(anchor)]
                rt = [rs[q]["bpp"] for q in sorted(rs)]
                pa = [anchor[q]["psnr"] for q in sorted(anchor)]
                pt = [rs[q]["psnr"] for q in sorted(rs)]
                sa = [anchor[q]["ms_ssim"] for q in sorted(anchor)]
                st = [rs[q]["ms_ssim"] for q in sorted(rs)]
                bdr, bdp, bds = bd_rate(ra, pa, rt, pt), bd_psnr(ra, pa, rt, pt), bd_rate(ra, sa, rt, st)
                gains[v].append((bdr, bdp, bds))
            steps = next(iter(rs.values()))["steps"]
            print(f"| {clip} | {v} | {steps} | " + " | ".join(cells)
                  + f" | {_fmt(bdr, '{:+.1f} %')} | {_fmt(bdp, '{:+.2f} dB')} | {_fmt(bds, '{:+.1f} %')} |")
    print()
    for v, vals in sorted(gains.items()):
        parts = []
        for i, (name, f) in enumerate([("BD-rate (PSNR)", "{:+.1f} %"), ("BD-PSNR", "{:+.2f} dB"),
                                       ("BD-rate (MS-SSIM)", "{:+.1f} %")]):
            xs = [t[i] for t in vals if t[i] is not None]
            parts.append(f"{name} {f.format(sum(xs) / len(xs))} ({len(xs)}/{len(vals)})" if xs else f"{name} n/a")
        print(f"- {v} vs {ANCHOR}: mean " + ", ".join(parts))


if __name__ == "__main__":
    main()
