"""RD plot of a results directory: one panel per clip plus the average (``nervc bench plot``)."""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

from benchmarks.results import (AVERAGE, METRICS, ResultsError, average_curves,  # noqa: E402
                                codec_order, curves, load_records)

STYLE = {"nervc-meta": ("tab:red", "o"), "nervc-meta-ssim": ("tab:brown", "P"), "nervc-meta-adam": ("tab:pink", "v"), "nervc-random": ("tab:orange", "s"),
         "x264": ("tab:blue", "^"), "x265": ("tab:green", "v"), "svtav1": ("tab:purple", "D")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nervc bench plot", description=(
        "Plot rate-distortion curves from benchmark JSON records: one panel per clip and the "
        "average over clips; traditional codecs dashed."))
    p.add_argument("results", type=Path, help="results directory written by nervc bench")
    p.add_argument("-o", "--output", type=Path, default=Path("rd.png"), help="image to write (png, pdf, svg)")
    p.add_argument("--metric", choices=sorted(METRICS), default="psnr_rgb", help="quality axis")
    p.add_argument("--protocol", help="protocol to plot when the directory holds several")
    p.add_argument("--log-bpp", action="store_true", help="logarithmic rate axis")
    return p


def plot(results: Path, output: Path, metric: str = "psnr_rgb", protocol: str | None = None,
         log_bpp: bool = False) -> Path:
    """Write the figure; returns its path."""
    recs = load_records(results, protocol)
    by_clip = curves(recs, metric)
    avg = average_curves(by_clip, metric)
    panels = [*by_clip, AVERAGE]
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    traditional = {r["codec"]: r.get("traditional", True) for r in recs}
    for ax, panel in zip(axes.flat, panels):
        if panel == AVERAGE:
            series = {c: ([p[1] for p in pts], [p[2] for p in pts]) for c, pts in avg.items()}
            title = f"average of {len(by_clip)} clips (per rate point)"
        else:
            series = {c: ([r["bpp"] for r in rs], [r[metric] for r in rs])
                      for c, rs in by_clip[panel].items()}
            first = next(iter(by_clip[panel].values()))[0]
            title = f"{panel} ({first['width']}x{first['height']}, {first['num_frames']}f)"
        for codec in codec_order(list(series)):
            xs, ys = series[codec]
            color, marker = STYLE.get(codec, (None, "x"))
            ax.plot(xs, ys, linestyle="--" if traditional.get(codec, True) else "-",
                    marker=marker, markersize=4, color=color, label=codec)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(METRICS[metric])
        if log_bpp:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"nervc rate-distortion, protocol {recs[0]['protocol']}", fontsize=11)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = plot(args.results, args.output, args.metric, args.protocol, args.log_bpp)
    except ResultsError as e:
        print(f"nervc bench plot: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
