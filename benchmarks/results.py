"""Reading benchmark records back: the shared input of the plot and table tools."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

# Plot and table order: nervc first, then the anchors.
CODEC_ORDER = ["nervc-meta", "nervc-meta-ssim", "nervc-meta-adam", "nervc-random", "x264", "x265", "svtav1"]
METRICS = {"psnr_rgb": "RGB PSNR (dB)", "psnr_yuv": "YUV 6:1:1 PSNR (dB)",
           "psnr_y": "Y PSNR (dB)", "ms_ssim": "MS-SSIM (RGB)"}
AVERAGE = "average"


class ResultsError(Exception):
    """The results directory cannot be summarised (empty, or protocols mixed)."""


def load_records(results: str | Path, protocol: str | None = None) -> list[dict[str, Any]]:
    """Every record under ``results`` of one protocol (the only one present if not given)."""
    root = Path(results)
    if not root.exists():
        raise ResultsError(f"{root}: no such results directory")
    recs = []
    for p in sorted(root.rglob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and {"protocol", "clip", "codec", "point", "bpp"} <= rec.keys():
            recs.append(rec)
    if not recs:
        raise ResultsError(f"{root}: no benchmark records found")
    protocols = sorted({r["protocol"] for r in recs})
    if protocol is None:
        if len(protocols) > 1:
            raise ResultsError(f"{root}: records of several protocols ({', '.join(protocols)}); "
                               "pick one with --protocol")
        protocol = protocols[0]
    recs = [r for r in recs if r["protocol"] == protocol]
    if not recs:
        raise ResultsError(f"{root}: no records of protocol {protocol} (found {', '.join(protocols)})")
    return recs


def codec_order(names: set[str] | list[str]) -> list[str]:
    known = [c for c in CODEC_ORDER if c in names]
    return known + sorted(set(names) - set(known))


def curves(recs: list[dict[str, Any]], metric: str = "psnr_rgb") -> dict[str, dict[str, list[dict]]]:
    """{clip: {codec: records sorted by bpp}}, records lacking ``metric`` left out."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in recs:
        if r.get(metric) is not None:
            out[r["clip"]][r["codec"]].append(r)
    for by_codec in out.values():
        for lst in by_codec.values():
            lst.sort(key=lambda r: r["bpp"])
    return {clip: dict(v) for clip, v in sorted(out.items())}


def average_curves(by_clip: dict[str, dict[str, list[dict]]], metric: str = "psnr_rgb"
                   ) -> dict[str, list[tuple[str, float, float]]]:
    """{codec: [(point, mean bpp, mean metric)]} over clips, for points every clip has.

    Averaging per rate point (same CRF / quality level on every clip) is the usual way to
    draw one summary curve; it is a picture, not the basis of the BD-rate averages.
    """
    clips = list(by_clip)
    codec_names = {c for v in by_clip.values() for c in v}
    out = {}
    for codec in codec_order(codec_names):
        per_clip = []
        for clip in clips:
            per_clip.append({r["point"]: r for r in by_clip[clip].get(codec, [])})
        common = set(per_clip[0]) if per_clip else set()
        for d in per_clip[1:]:
            common &= set(d)
        pts = []
        for point in common:
            rs = [d[point] for d in per_clip]
            pts.append((point, sum(r["bpp"] for r in rs) / len(rs), sum(r[metric] for r in rs) / len(rs)))
        if pts:
            out[codec] = sorted(pts, key=lambda t: t[1])
    return out
