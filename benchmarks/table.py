"""Markdown summary of a results directory for the README (``nervc bench table``).

Columns: PSNR at matched rates (each codec's curve interpolated at fixed bpp), BD-rate vs
x264 and vs x265 (per clip, then the mean over the clips where the curves overlap), encode
seconds per frame (mean over points) and decode frames per second (all frames decoded / all
decode seconds). Per-clip BD-rate tables follow the summary, then the quality gap to x265 and,
when both nervc inits ran, what the meta-learned init buys over the random one at the same
step budget (BD-rate and BD-PSNR of nervc-meta against nervc-random).
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator

from benchmarks.bdrate import bd_psnr, bd_rate
from benchmarks.results import METRICS, ResultsError, codec_order, curves, load_records

ANCHORS = ("x264", "x265")
DEFAULT_BPP = (0.05, 0.1, 0.2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nervc bench table", description=(
        "Markdown table of benchmark results: quality at matched bpp, BD-rate vs x264/x265, "
        "encode s/frame, decode fps."))
    p.add_argument("results", type=Path, help="results directory written by nervc bench")
    p.add_argument("-o", "--output", type=Path, help="write the markdown here (default: stdout)")
    p.add_argument("--metric", choices=sorted(METRICS), default="psnr_rgb",
                   help="quality measure for matched-rate columns and BD-rate")
    p.add_argument("--bpp", default=",".join(str(b) for b in DEFAULT_BPP),
                   help="comma-separated rates (bpp) at which to report quality")
    p.add_argument("--protocol", help="protocol to tabulate when the directory holds several")
    p.add_argument("--no-per-clip", action="store_true", help="summary table only")
    p.add_argument("--versus", type=Path, metavar="DIR",
                   help="an earlier run: add BD-rate of each nervc codec against its namesake there")
    return p


def quality_at(recs: list[dict], bpp: float, metric: str) -> float | None:
    """Metric at ``bpp`` by PCHIP in log(bpp) within the measured range (no extrapolation)."""
    pts = sorted({r["bpp"]: r[metric] for r in recs}.items())
    if len(pts) < 2 or not pts[0][0] <= bpp <= pts[-1][0]:
        return None
    x = np.log([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    return float(PchipInterpolator(x, y)(math.log(bpp)))


def _fmt(v: float | None, spec: str, k: int, n: int, suffix: str = "") -> str:
    if v is None or k == 0:
        return "n/a"
    text = f"{v:{spec}}{suffix}"
    return text if k == n else f"{text} ({k}/{n})"


def _mean(vals: list[float | None]) -> tuple[float | None, int]:
    ok = [v for v in vals if v is not None]
    return (sum(ok) / len(ok) if ok else None), len(ok)


def _per_clip(by_clip: dict, codec: str, anchor: str, metric: str,
              measure: Callable[..., float | None]) -> dict[str, float | None]:
    """``measure`` (bd_rate or bd_psnr) of ``codec`` vs ``anchor`` per clip; None when either is missing."""
    out = {}
    for clip, by_codec in by_clip.items():
        a, t = by_codec.get(anchor), by_codec.get(codec)
        out[clip] = (measure([r["bpp"] for r in a], [r[metric] for r in a],
                             [r["bpp"] for r in t], [r[metric] for r in t]) if a and t else None)
    return out


def bd_rates(by_clip: dict, codec: str, anchor: str, metric: str) -> dict[str, float | None]:
    """Per clip BD-rate (%) of ``codec`` vs ``anchor``; None when either is missing or disjoint."""
    return _per_clip(by_clip, codec, anchor, metric, bd_rate)


def quality_gaps(by_clip: dict, codec: str, anchor: str, metric: str) -> dict[str, float | None]:
    """Per clip, mean of (anchor quality − codec quality) at the codec's own rates.

    The anchor's curve is interpolated at each of the codec's points that lies inside the
    anchor's measured rate range. Unlike BD-rate it is defined when the two curves share no
    quality range (a codec far behind), which is what "how far behind, on which clip" needs.
    Positive = the codec is behind. None when no point of the codec lies in the anchor's range.
    """
    out = {}
    for clip, by_codec in by_clip.items():
        a, t = by_codec.get(anchor), by_codec.get(codec)
        gaps = []
        for r in t or []:
            q = quality_at(a, r["bpp"], metric) if a else None
            if q is not None:
                gaps.append(q - r[metric])
        out[clip] = sum(gaps) / len(gaps) if gaps else None
    return out


def versus(results: Path, earlier: Path, metric: str = "psnr_rgb") -> list[str]:
    """Markdown lines: BD-rate and BD-PSNR per clip of each nervc codec of ``results`` against
    the codec of the same name in ``earlier`` (another run, possibly another protocol version
    over the same clips: how much a new codec generation saves at the same settings)."""
    now, old = curves(load_records(results), metric), curves(load_records(earlier), metric)
    clips = [c for c in now if c in old]
    names = [c for c in codec_order({k for c in clips for k in now[c]}) if c.startswith("nervc")
             and any(c in old[k] for k in clips)]
    spec = ".4f" if metric == "ms_ssim" else ".2f"
    unit = "" if metric == "ms_ssim" else " dB"
    lines = ["", f"Against the earlier run in `{earlier.name}` (same codec names; BD-rate / BD-PSNR, "
             f"{METRICS[metric]}):", "", "| clip | " + " | ".join(names) + " |",
             "|" + "---|" * (len(names) + 1)]
    vals = {}
    for name in names:
        for clip in clips:
            a, t = old[clip].get(name), now[clip].get(name)
            args = ([r["bpp"] for r in a], [r[metric] for r in a],
                    [r["bpp"] for r in t], [r[metric] for r in t]) if a and t else None
            vals[name, clip] = (bd_rate(*args), bd_psnr(*args)) if args else (None, None)
    for clip in clips:
        cells = [f"{_fmt(vals[n, clip][0], '+.1f', 1, 1, ' %')} / {_fmt(vals[n, clip][1], '+' + spec, 1, 1, unit)}"
                 for n in names]
        lines.append(f"| {clip} | " + " | ".join(cells) + " |")
    means = []
    for n in names:
        (r, kr), (q, kq) = (_mean([vals[n, c][0] for c in clips]), _mean([vals[n, c][1] for c in clips]))
        means.append(f"{_fmt(r, '+.1f', kr, len(clips), ' %')} / {_fmt(q, '+' + spec, kq, len(clips), unit)}")
    lines.append("| **mean** | " + " | ".join(means) + " |")
    return lines


def table(results: Path, metric: str = "psnr_rgb", bpps: Sequence[float] = DEFAULT_BPP,
          protocol: str | None = None, per_clip: bool = True, earlier: Path | None = None) -> str:
    """The markdown text."""
    recs = load_records(results, protocol)
    by_clip = curves(recs, metric)
    clips = list(by_clip)
    n = len(clips)
    names = codec_order({r["codec"] for r in recs})
    unit = "" if metric == "ms_ssim" else " dB"
    spec = ".4f" if metric == "ms_ssim" else ".2f"
    lines = [f"Protocol {recs[0]['protocol']}, {n} clips; quality = {METRICS[metric]}; "
             "BD-rate: PCHIP over the shared quality range, negative = fewer bits; "
             "(k/n) = mean over the k of n clips where the curves overlap; quality at a rate is "
             "interpolated (PCHIP in log bpp, never extrapolated) and shown only when every clip "
             "reaches that rate.", ""]
    head = ["codec", *[f"{metric.replace('_', ' ').upper()} @ {b:g} bpp" for b in bpps],
            *[f"BD-rate vs {a}" for a in ANCHORS], "encode s/frame", "decode fps"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for codec in names:
        row = [codec]
        for b in bpps:  # a mean over a subset of clips would not compare across codecs
            v, k = _mean([quality_at(by_clip[c].get(codec, []), b, metric) for c in clips])
            row.append(_fmt(v, spec, k, n, unit) if k == n else f"n/a ({k}/{n})")
        for a in ANCHORS:
            v, k = _mean(list(bd_rates(by_clip, codec, a, metric).values()))
            row.append(_fmt(v, "+.1f", k, n, " %"))
        mine = [r for r in recs if r["codec"] == codec]
        enc = sum(r["encode_seconds_per_frame"] for r in mine) / len(mine)
        fps = sum(r["num_frames"] for r in mine) / max(sum(r["decode_seconds"] for r in mine), 1e-9)
        row += [f"{enc:.3g}", f"{fps:.3g}"]
        lines.append("| " + " | ".join(row) + " |")
    versions = {r["codec"]: r["version"] for r in recs}
    lines += ["", "Versions: " + "; ".join(f"{c}: {versions[c]}" for c in names) + "."]
    if per_clip:
        for a in ANCHORS:
            others = [c for c in names if c != a]
            if not any(a in by_clip[c] for c in clips):
                continue
            lines += ["", f"BD-rate vs {a} per clip ({METRICS[metric]}):", "",
                      "| clip | " + " | ".join(others) + " |", "|" + "---|" * (len(others) + 1)]
            table_vals = {c: bd_rates(by_clip, c, a, metric) for c in others}
            for clip in clips:
                cells = [_fmt(table_vals[c][clip], "+.1f", 1, 1, " %") for c in others]
                lines.append(f"| {clip} | " + " | ".join(cells) + " |")
        lines += _gap_section(by_clip, clips, names, metric, spec, unit)
        lines += _init_section(by_clip, clips, metric, spec, unit)
    if earlier is not None:
        lines += versus(results, earlier, metric)
    return "\n".join(lines) + "\n"


def _gap_section(by_clip: dict, clips: list[str], names: list[str], metric: str, spec: str,
                 unit: str) -> list[str]:
    """Per clip quality gap to x265 at each codec's own rates (see ``quality_gaps``)."""
    anchor = "x265"
    others = [c for c in names if c != anchor]
    if not others or not any(anchor in by_clip[c] for c in clips):
        return []
    vals = {c: quality_gaps(by_clip, c, anchor, metric) for c in others}
    lines = ["", f"Quality gap to {anchor} at each codec's own rates ({anchor}'s {METRICS[metric]} "
             f"interpolated at the codec's bpp, minus the codec's; mean over its points inside "
             f"{anchor}'s rate range; positive = behind {anchor}):", "",
             "| clip | " + " | ".join(others) + " |", "|" + "---|" * (len(others) + 1)]
    for clip in clips:
        cells = [_fmt(vals[c][clip], "+" + spec, 1, 1, unit) for c in others]
        lines.append(f"| {clip} | " + " | ".join(cells) + " |")
    means = [_mean(list(vals[c].values())) for c in others]
    lines.append("| **mean** | " + " | ".join(_fmt(v, "+" + spec, k, len(clips), unit)
                                            for v, k in means) + " |")
    return lines


def init_gains(by_clip: dict, metric: str, codec: str = "nervc-meta",
               anchor: str = "nervc-random") -> dict[str, tuple[float | None, float | None]]:
    """Per clip (BD-rate %, BD-quality) of ``codec`` vs ``anchor``; clips lacking either are left out."""
    rates = _per_clip(by_clip, codec, anchor, metric, bd_rate)
    qualities = _per_clip(by_clip, codec, anchor, metric, bd_psnr)
    return {clip: (rates[clip], qualities[clip]) for clip, by_codec in by_clip.items()
            if by_codec.get(codec) and by_codec.get(anchor)}


def _init_section(by_clip: dict, clips: list[str], metric: str, spec: str,
                  unit: str) -> list[str]:
    """What the meta-learned init buys: nervc-meta vs nervc-random, same steps, per clip."""
    gains = init_gains(by_clip, metric)
    if not gains:
        return []
    lines = ["", f"Meta-learned init vs random init at the same step budget (nervc-meta vs "
             f"nervc-random; BD-rate: negative = fewer bits; BD-quality: mean {METRICS[metric]} "
             f"difference at equal rate, positive = better):", "",
             "| clip | BD-rate | BD-quality |", "|---|---|---|"]
    for clip in clips:
        if clip in gains:
            r, q = gains[clip]
            lines.append(f"| {clip} | {_fmt(r, '+.1f', 1, 1, ' %')} | "
                         f"{_fmt(q, '+' + spec, 1, 1, unit)} |")
    n = len(gains)
    (mr, kr), (mq, kq) = (_mean([g[0] for g in gains.values()]),
                          _mean([g[1] for g in gains.values()]))
    lines.append(f"| **mean** | {_fmt(mr, '+.1f', kr, n, ' %')} | {_fmt(mq, '+' + spec, kq, n, unit)} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        bpps = [float(b) for b in args.bpp.split(",") if b.strip()]
    except ValueError:
        print(f"nervc bench table: bad --bpp {args.bpp!r}", file=sys.stderr)
        return 2
    try:
        text = table(args.results, args.metric, bpps, args.protocol, not args.no_per_clip, args.versus)
    except ResultsError as e:
        print(f"nervc bench table: {e}", file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
