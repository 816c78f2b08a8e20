"""The two tunes on the bench clips, from one `nervc bench` run holding nervc-meta (balanced) and
nervc-meta-ssim: per clip BD-rate and BD-quality of balanced against ssim, in RGB PSNR and MS-SSIM.

    PYTHONPATH=. python benchmarks/results/fit-loss/bench_tune.py RESULTS_DIR
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.bdrate import bd_psnr, bd_rate


def main(root: str) -> None:
    pts: dict = defaultdict(lambda: defaultdict(list))
    for f in Path(root).glob("*/nervc-meta*/*.json"):
        r = json.loads(f.read_text())
        pts[r["clip"]][r["codec"]].append(r)
    print("| clip | tune | options.tune | init | BD-rate (PSNR) | BD-PSNR | BD-rate (MS-SSIM) | top rung bpp / dB |")
    print("|---|---|---|---|---|---|---|---|")
    sums = defaultdict(list)
    for clip in sorted(pts):
        a, t = pts[clip].get("nervc-meta-ssim"), pts[clip].get("nervc-meta")
        if not a or not t:
            continue
        a, t = sorted(a, key=lambda r: r["bpp"]), sorted(t, key=lambda r: r["bpp"])
        f = lambda rs, k: [r[k] for r in rs]  # noqa: E731
        vals = (bd_rate(f(a, "bpp"), f(a, "psnr_rgb"), f(t, "bpp"), f(t, "psnr_rgb")),
                bd_psnr(f(a, "bpp"), f(a, "psnr_rgb"), f(t, "bpp"), f(t, "psnr_rgb")),
                bd_rate(f(a, "bpp"), f(a, "ms_ssim"), f(t, "bpp"), f(t, "ms_ssim")))
        for i, v in enumerate(vals):
            if v is not None:
                sums[i].append(v)
        fmt = ["n/a" if v is None else s.format(v) for v, s in zip(vals, ("{:+.1f} %", "{:+.2f} dB", "{:+.1f} %"))]
        top_a, top_t = max(a, key=lambda r: r["bpp"]), max(t, key=lambda r: r["bpp"])
        print(f"| {clip} | balanced vs ssim | {t[0]['options'].get('tune')} / {a[0]['options'].get('tune')} | "
              f"{t[0]['version'].split('init ')[-1].rstrip(')')} | " + " | ".join(fmt)
              + f" | {top_t['bpp']:.4f} / {top_t['psnr_rgb']:.2f} (ssim {top_a['bpp']:.4f} / {top_a['psnr_rgb']:.2f}) |")
    names = ("BD-rate (PSNR)", "BD-PSNR", "BD-rate (MS-SSIM)")
    print()
    print("- mean: " + ", ".join(f"{n} {sum(v) / len(v):+.2f} ({len(v)} clips)" for n, v in
                                 ((names[i], sums[i]) for i in range(3)) if v))


if __name__ == "__main__":
    main(sys.argv[1])
