"""Two inits at the same points: ΔPSNR, Δbytes and ΔPSNR at equal bytes (−3 dB per e-fold of
rate, the slope these clips show between rungs).

    python benchmarks/results/c8-meta/compare.py                      # c8_meta vs c12 (../metasgd-lr1e-2)
    python benchmarks/results/c8-meta/compare.py c8_meta c8_meta2     # two inits of runs.jsonl
    python benchmarks/results/c8-meta/compare.py c8_meta NAME OTHER.jsonl  # NAME's rows from OTHER.jsonl
"""
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).parent
SLOPE = 3.0
BENCH = ("carphone", "foreman", "mobile")


def rows(path: Path, name: str | None) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if name is None or r.get("init") == name:
            out[(r["clip"], r["q"], r.get("fit", r.get("steps")))] = r
    return out


if len(sys.argv) >= 3:
    ref_name, new_name = sys.argv[1], sys.argv[2]
    ref = rows(HERE / "runs.jsonl", ref_name)
else:
    ref_name, new_name = "c12", "c8_meta"
    ref = rows(HERE.parent / "metasgd-lr1e-2" / "runs.jsonl", None)
new = rows(Path(sys.argv[3]) if len(sys.argv) > 3 else HERE / "runs.jsonl", new_name)
print(f"| clip | q | fit | {ref_name} | {new_name} | ΔPSNR | Δbytes | ΔPSNR at equal bytes |")
print("|---|---|---|---|---|---|---|---|")
eq = {}
for key, r in new.items():
    s = ref.get(key)
    if s is None:
        continue
    d = r["psnr"] - s["psnr"]
    ratio = r["bytes"] / s["bytes"]
    e = d - SLOPE * math.log(ratio)
    eq.setdefault((key[2], "bench" if r["clip"].split("_")[0] in BENCH else "train"), []).append(e)
    print(f"| {r['clip']} | q{r['q']} | {key[2]} | {s['bytes']:,} B {s['psnr']:.2f} dB | {r['bytes']:,} B {r['psnr']:.2f} dB"
          f" | {d:+.2f} | {100 * (ratio - 1):+.1f} % | {e:+.2f} |")
for k, v in sorted(eq.items()):
    print(f"mean ΔPSNR at equal bytes, {k[0]}, {k[1]} clips ({len(v)} points): {sum(v) / len(v):+.2f} dB")
