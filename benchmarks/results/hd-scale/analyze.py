"""Tables of the coded-size grids: per clip and variant, bpp / PSNR of -q 1, 3, 5, encode time.

    PYTHONPATH=. python benchmarks/results/hd-scale/analyze.py > benchmarks/results/hd-scale/tables.md
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    for name, title in (("points.jsonl", "HD sources (720p, 1080p), first frames at native size"),
                        ("points2.jsonl", "Smaller sources (native, or box-reduced by SRC)")):
        rows = defaultdict(dict)
        for line in (HERE / name).read_text().splitlines():
            r = json.loads(line)
            src = r.get("source", "") if name == "points2.jsonl" else ""
            key = (r["clip"], src)
            rows[key][(r["scale"], r["preset"], r["q"])] = r
        print(f"## {title} (`{name}`)\n")
        print("| clip | source | coded | preset | steps | q1 bpp / dB | q3 bpp / dB | q5 bpp / dB | encode s (3 rungs) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for (clip, src), pts in rows.items():
            variants = sorted({(s, p) for s, p, _ in pts})
            for s, p in variants:
                qs = [pts.get((s, p, q)) for q in (1, 3, 5)]
                any_r = next(r for r in qs if r)
                cells = [f"{r['bpp']:.4f} / {r['psnr']:.2f}" if r else "" for r in qs]
                print(f"| {clip} | {src or '-'} | {any_r['internal']} | {p} | {any_r['steps']} | "
                      + " | ".join(cells) + f" | {any_r['encode_s']} |")
        print()


if __name__ == "__main__":
    main()
