"""Tables of the top-size trial: every rung per clip and variant, BD-rate / BD-PSNR of ``v96``
against ``ladder`` (each curve = the shared rungs 1, 3, 5 + the variant's own top rungs, a rung
that repeats a lower one's file dropped), and each curve's top.

    PYTHONPATH=. python benchmarks/results/top-size/analyze.py [POINTS.jsonl] > tables.md
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.trials import curve_bd, distinct_rungs


def curves(path: Path) -> dict[str, dict[str, list[dict]]]:
    by: dict = defaultdict(lambda: defaultdict(dict))
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            by[r["clip"]][r["variant"]][r["q"]] = r
    out: dict = {}
    for clip, vs in by.items():
        out[clip] = {}
        for v in ("ladder", "v96"):
            out[clip][v] = distinct_rungs({**vs.get("base", {}), **vs.get(v, {})})
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else Path(__file__).with_name("points.jsonl"))
    cs = curves(path)
    print("| clip | variant | rungs: q bpp / dB | top dB | BD-rate v96 vs ladder | BD-PSNR |")
    print("|---|---|---|---|---|---|")
    gains = []
    for clip in sorted(cs):
        a, t = cs[clip]["ladder"], cs[clip]["v96"]
        bdr = bdp = None
        if len(a) >= 2 and len(t) >= 2:
            bdr, bdp = curve_bd(a, t)
            gains.append((bdr, bdp, t[-1]["psnr"] - a[-1]["psnr"]))
        for v, rows in (("ladder", a), ("v96", t)):
            cells = ", ".join(f"q{r['q']} {r['bpp']:.4f} / {r['psnr']:.2f}" for r in rows)
            extra = (f" | {'n/a' if bdr is None else f'{bdr:+.1f} %'} | {'n/a' if bdp is None else f'{bdp:+.2f} dB'}"
                     if v == "v96" else " | | ")
            print(f"| {clip} | {v} | {cells} | {rows[-1]['psnr']:.2f}{extra} |")
    rs = [g[0] for g in gains if g[0] is not None]
    if rs:
        print(f"\nmean BD-rate v96 vs ladder {sum(rs) / len(rs):+.1f} % ({len(rs)}/{len(gains)}), "
              f"BD-PSNR {sum(g[1] for g in gains if g[1] is not None) / len(rs):+.2f} dB, "
              f"top {sum(g[2] for g in gains) / len(gains):+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
