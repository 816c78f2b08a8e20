"""c8_meta vs the shipped init at the same points: ΔPSNR, Δbytes and ΔPSNR at equal bytes
(−3 dB per e-fold of rate, the slope these clips show between rungs).

    python benchmarks/results/c8-meta/compare.py
"""
import json
import math
from pathlib import Path

HERE = Path(__file__).parent
SLOPE = 3.0
shipped = {}
for line in (HERE.parent / "metasgd-lr1e-2" / "runs.jsonl").read_text().splitlines():
    r = json.loads(line)
    shipped[(r["clip"], r["q"], r["steps"])] = r
rows = [json.loads(line) for line in (HERE / "runs.jsonl").read_text().splitlines()]
print("| clip | q | fit | shipped | c8_meta | ΔPSNR | Δbytes | ΔPSNR at equal bytes |")
print("|---|---|---|---|---|---|---|---|")
eq = {}
for r in rows:
    s = shipped.get((r["clip"], r["q"], r["fit"]))
    if s is None:
        continue
    d = r["psnr"] - s["psnr"]
    ratio = r["bytes"] / s["bytes"]
    e = d - SLOPE * math.log(ratio)
    eq.setdefault((r["fit"], "bench" if r["clip"].split("_")[0] in ("carphone", "foreman", "mobile") else "train"), []).append(e)
    print(f"| {r['clip']} | q{r['q']} | {r['fit']} | {s['bytes']:,} B {s['psnr']:.2f} dB | {r['bytes']:,} B {r['psnr']:.2f} dB"
          f" | {d:+.2f} | {100 * (ratio - 1):+.1f} % | {e:+.2f} |")
for k, v in sorted(eq.items()):
    print(f"mean ΔPSNR at equal bytes, {k[0]}, {k[1]} clips ({len(v)} points): {sum(v) / len(v):+.2f} dB")
