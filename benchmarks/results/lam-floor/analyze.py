"""Per preset and clip: the rung table of ladder.jsonl and the last rung that still buys picture.

A rung "buys picture" when it is above the best rung of fewer bytes by at least MIN_GAIN dB (the
issue's "no two rungs within 0.3 dB") and by at least MIN_SLOPE dB per e-fold of the extra
bytes (x264 gives ~3 dB per e-fold on these clips; a rung that triples the file for 0.5 dB is
not worth its bytes); the knee is the smallest lam that does. The floor the
encoder uses is FLOOR_LAM_VISITS / visits per frame (codec.ladder); this prints, per preset, the
visits, the knees and knee x visits (what FLOOR_LAM_VISITS should be near).

    python benchmarks/results/lam-floor/analyze.py [ladder.jsonl]
"""
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from codec.ladder import LADDER, lam_floor
from codec.presets import PRESET_NAMES, schedule

MIN_GAIN = 0.3
MIN_SLOPE = 1.0
path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "ladder.jsonl"
rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
by = defaultdict(dict)
for r in rows:
    by[(r["preset"], r["clip"], r["frames"])][r["q"]] = r
SIZES = {}  # clip -> (width, height), from the data's manifest
for line in Path("../shared/data/MANIFEST.tsv").read_text().splitlines():
    f = line.split("\t")
    if len(f) > 3 and f[2].isdigit():
        SIZES[f[1]] = (int(f[2]), int(f[3]))
for preset in PRESET_NAMES:
    keys = sorted(k for k in by if k[0] == preset)
    if not keys:
        continue
    print(f"\n## {preset}\n")
    qs = sorted({q for k in keys for q in by[k]})
    print("| clip | visits/frame | " + " | ".join(f"q{q} (lam {LADDER[q].lam:g})" for q in qs) + " | knee | knee x visits |")
    print("|---|---|" + "---|" * len(qs) + "---|---|")
    prods = []
    for k in keys:
        _, clip, n = k
        s = schedule(preset, *SIZES[clip], n)
        visits = s.steps * s.batch / n
        cells, best, knee = [], None, None
        for q in qs:
            r = by[k].get(q)
            if r is None:
                cells.append("")
                continue
            cells.append(f"{r['bytes']:,} B {r['psnr']:.2f}")
            if best is None or r["psnr"] - best["psnr"] >= max(MIN_GAIN, MIN_SLOPE * math.log(r["bytes"] / best["bytes"])):
                knee = q
            if best is None or r["psnr"] > best["psnr"]:
                best = r
        # knee = the last rung measured that gained; if the table's top rung still gains, the
        # knee is at or below it (a bound)
        bound = " (top rung measured: λ ≤)" if knee == max(by[k]) else " (lowest measured: λ ≥)" if knee == min(by[k]) else ""
        lam = LADDER[knee].lam
        prods.append(lam * visits)
        print(f"| {clip} {n} f | {visits:.1f} | " + " | ".join(cells)
              + f" | q{knee}{bound} | {lam * visits:.2f} |")
    g = math.exp(sum(map(math.log, prods)) / len(prods))
    print(f"\ngeometric mean knee x visits: {g:.2f}; the encoder's floor at {visits:.1f} visits: "
          f"{lam_floor(visits):.3g}")
