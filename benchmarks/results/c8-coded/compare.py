"""c8_coded against the shipped init at the same 10 points: ΔPSNR, Δbytes and ΔPSNR at equal bytes
(3 dB per e-fold of rate, the slope of ../c8-meta/compare.py).

    python benchmarks/results/c8-coded/compare.py
"""
import json
import math
from pathlib import Path

HERE = Path(__file__).parent
SLOPE = 3.0
BENCH = ("carphone", "foreman", "mobile")
rows: dict = {}
for line in (HERE / "runs.jsonl").read_text().splitlines():
    r = json.loads(line)
    rows.setdefault(r["init"], {})[(r["clip"], r["frames"], r["q"])] = r
ref, new = rows["shipped"], rows["c8_coded"]
print("| clip | q | shipped | c8_coded | ΔPSNR | Δbytes | ΔPSNR at equal bytes |")
print("|---|---|---|---|---|---|---|")
eq: dict = {}
for key, r in new.items():
    s = ref[key]
    d = r["psnr"] - s["psnr"]
    ratio = r["bytes"] / s["bytes"]
    e = d - SLOPE * math.log(ratio)
    eq.setdefault("bench" if key[0].split("_")[0] in BENCH else "train", []).append(e)
    print(f"| {key[0]} {key[1]} f | q{key[2]} | {s['bytes']:,} B {s['psnr']:.2f} dB | {r['bytes']:,} B {r['psnr']:.2f} dB"
          f" | {d:+.2f} | {100 * (ratio - 1):+.1f} % | {e:+.2f} |")
print()
for k, v in sorted(eq.items(), reverse=True):
    print(f"- mean ΔPSNR at equal bytes, {k} clips ({len(v)} points): {sum(v) / len(v):+.2f} dB")
