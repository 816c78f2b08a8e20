"""Shared plumbing of the small encoder trials (run from ``benchmarks/work/``; each lesson is a
dated entry in ``docs/experiments.md`` naming the commit that holds its script).

A trial asks one question of the encoder (a setting, a loss, an optimizer constant) on train/
clips, one ladder per clip and variant: read a clip (box-reduced to a bench-like size), encode
the ladder, decode every written file, measure bytes / PSNR / MS-SSIM at the clip's size, append
one JSON line per rung; then tabulate BD-rate of every variant against an anchor variant. The
trial's own script only says what a variant changes (usually a monkeypatch of a module
constant) and calls :func:`run_point`; :func:`main` of ``analyze`` turns the points into tables.
``python -m benchmarks.trials SCRIPT OUT VARIANT ...`` (:func:`check_variants`) runs such a
script on the five train clips for each variant, one process per variant.

Earlier trials (``auto-visits``, ``fit-loss``, ``hd-scale``) carry their own copies of this
plumbing as they were run; new ones use this module.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from benchmarks.bdrate import bd_psnr, bd_rate
from benchmarks.metrics import ms_ssim
from codec.decoder import decode
from codec.encoder import encode_ladder
from codec.metrics import frame_mse, psnr_of_mse
from metanerv.model import downscale_frames, frame_times
from nervcore.video_io import Video, read_video

# The train clips the trials use: bench-like sizes after box reduction (name, frames, reduce).
TRAIN_CLIPS: tuple[tuple[str, int, int], ...] = (
    ("chaplin.mp4", 30, 2), ("cup.mp4", 30, 2), ("vtest.avi", 30, 2), ("bedroom.mp4", 30, 2), ("box.mp4", 16, 1))
TRAIN_DIR = "../shared/data/train"


def load_clip(path: str | Path, frames: int, reduce: int = 1) -> Video:
    """The first ``frames`` frames of ``path``, box-reduced ``reduce`` times in each direction
    (the reduced clip is then the original every measurement compares against)."""
    video = read_video(path, frames=slice(0, frames))
    full = video.frames
    if reduce > 1:
        x = torch.from_numpy(full).permute(0, 3, 1, 2).float()
        x = downscale_frames(x, full.shape[1] // reduce, full.shape[2] // reduce)
        full = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return Video(full, video.fps)


def machine() -> str:
    return f"{platform.node()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def gop_psnr(model: torch.nn.Module, frames: torch.Tensor, weights: dict[str, torch.Tensor],
             batch: int = 8) -> float:
    """PSNR of a whole GOP (``frames``, [n, 3, H, W] in [0, 1], at the coded size) drawn by
    ``model`` with ``weights`` (e.g. base + quantized residuals: what the decoder would get),
    frame batches of ``batch``; for trials that look inside a fit."""
    from torch.func import functional_call
    n, mse = frames.shape[0], []
    with torch.no_grad():
        for i in range(0, n, batch):
            idx = torch.arange(i, min(n, i + batch))
            pred = functional_call(model, weights, (frame_times(idx, n),))
            mse.append((pred.clamp(0, 1) - frames[idx]).square().mean(dim=(1, 2, 3)))
    return -10 * math.log10(float(torch.cat(mse).mean()))


def measure_ladder(video: Video, qualities: Iterable[int], **encode_kw: Any) -> list[dict[str, Any]]:
    """Encode ``video`` once as a ladder of ``qualities`` (``encode_ladder`` keywords pass
    through), decode each file and measure it: bytes of the file, bpp over the clip's pixels,
    8-bit RGB PSNR (mean of per-frame MSE) and MS-SSIM at the clip's size, steps, encode time."""
    full = video.frames
    n, h, w, _ = full.shape
    qs = sorted(set(qualities))
    given = encode_kw.get("init", "default")
    init = {"init": [str(given)]} if isinstance(given, (str, Path)) and str(given) not in ("default", "random") else {}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {q: Path(tmp) / f"q{q}.nerv" for q in qs}
        t0 = time.monotonic()
        res = encode_ladder(video, outs, progress=False, overwrite=True, **encode_kw)
        enc_s = time.monotonic() - t0
        recs = []
        for q in qs:
            dec = decode(outs[q], **init).frames
            size = outs[q].stat().st_size
            recs.append({"q": q, "bytes": size, "bpp": 8.0 * size / (h * w * n),
                         "psnr": psnr_of_mse(frame_mse(dec, full)), "ms_ssim": ms_ssim(full, dec),
                         "steps": res[q].steps, "encode_s": round(enc_s, 1), "source": f"{w}x{h}",
                         "frames": n})
    return recs


def run_point(clip: str | Path, frames: int, reduce: int, variant: str, out: str | Path,
              patch: Callable[[], None] | None = None, qualities: Iterable[int] = (1, 3, 5, 7),
              **encode_kw: Any) -> list[dict[str, Any]]:
    """One clip and variant: apply ``patch`` (if any), measure the ladder, append its records
    (tagged with clip, variant, settings and machine) to the JSONL file ``out``."""
    if patch is not None:
        patch()
    video = load_clip(clip, frames, reduce)
    recs = measure_ladder(video, qualities, **encode_kw)
    tag = {"clip": Path(clip).name, "reduce": reduce, "variant": variant,
           "settings": {k: str(v) for k, v in encode_kw.items()}, "machine": machine()}
    with open(out, "a") as f:
        for r in recs:
            r = {**tag, **r}
            print(json.dumps(r), flush=True)
            f.write(json.dumps(r) + "\n")
    return recs


def load_points(path: str | Path) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    """``{clip: {variant: {q: record}}}`` of a trial's JSONL (a later record of a point wins)."""
    pts: dict = defaultdict(lambda: defaultdict(dict))
    for line in Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            pts[r["clip"]][r["variant"]][r["q"]] = r
    return pts


def curve_bd(anchor: Sequence[dict[str, Any]], test: Sequence[dict[str, Any]],
             quality: str = "psnr") -> tuple[float | None, float | None]:
    """BD-rate (%) and BD-quality of the records ``test`` against ``anchor`` (each a curve of
    records with ``bpp`` and ``quality``); None where the curves do not overlap."""
    ra, qa = [r["bpp"] for r in anchor], [r[quality] for r in anchor]
    rt, qt = [r["bpp"] for r in test], [r[quality] for r in test]
    return bd_rate(ra, qa, rt, qt), bd_psnr(ra, qa, rt, qt)


def distinct_rungs(rungs: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of ``{q: record}`` in rung order, without a rung that wrote the same file as a
    lower one (same bytes and PSNR: a rung raised to the budget floor is a copy); a curve for
    BD-rate must not hold one point twice."""
    out, seen = [], set()
    for q in sorted(rungs):
        key = (rungs[q]["bytes"], round(rungs[q]["psnr"], 6))
        if key not in seen:
            seen.add(key)
            out.append(rungs[q])
    return out


def _fmt(v: float | None, f: str) -> str:
    return "n/a" if v is None else f.format(v)


def bd_tables(pts: dict, anchor: str) -> str:
    """Markdown: per clip and variant the rungs' bpp / PSNR / MS-SSIM with BD-rate (PSNR),
    BD-PSNR and BD-rate (MS-SSIM) against ``anchor``; then each variant's mean over the clips
    where both have the same rungs."""
    qs = sorted({q for by_v in pts.values() for rs in by_v.values() for q in rs})
    lines = ["| clip | variant | steps | " + " | ".join(f"q{q} bpp / dB / MS-SSIM" for q in qs)
             + " | BD-rate PSNR | BD-PSNR | BD-rate MS-SSIM |",
             "|---|---|---|" + "---|" * len(qs) + "---|---|---|"]
    gains: dict = defaultdict(list)
    for clip, by_v in pts.items():
        base = by_v.get(anchor)
        for v in sorted(by_v, key=lambda k: (k != anchor, k)):
            rs = by_v[v]
            cells = [f"{rs[q]['bpp']:.4f} / {rs[q]['psnr']:.2f} / {rs[q]['ms_ssim']:.4f}" if q in rs else ""
                     for q in qs]
            bdr = bdp = bds = None
            if base and v != anchor and sorted(rs) == sorted(base):
                ks = sorted(rs)
                a, t = [base[q] for q in ks], [rs[q] for q in ks]
                (bdr, bdp), bds = curve_bd(a, t), curve_bd(a, t, "ms_ssim")[0]
                gains[v].append((clip, bdr, bdp, bds))
            steps = next(iter(rs.values()))["steps"]
            lines.append(f"| {clip} | {v} | {steps} | " + " | ".join(cells)
                         + f" | {_fmt(bdr, '{:+.1f} %')} | {_fmt(bdp, '{:+.2f} dB')} | {_fmt(bds, '{:+.1f} %')} |")
    lines.append("")
    for v, vals in sorted(gains.items()):
        parts = []
        for i, (name, f) in enumerate([("BD-rate (PSNR)", "{:+.1f} %"), ("BD-PSNR", "{:+.2f} dB"),
                                       ("BD-rate (MS-SSIM)", "{:+.1f} %")], start=1):
            xs = [t[i] for t in vals if t[i] is not None]
            parts.append(f"{name} {f.format(sum(xs) / len(xs))} ({len(xs)}/{len(vals)})" if xs else f"{name} n/a")
        better = sum(1 for t in vals if t[1] is not None and t[1] < 0)
        lines.append(f"- {v} vs {anchor}: mean " + ", ".join(parts) + f"; fewer bits on {better}/{len(vals)} clips")
    return "\n".join(lines) + "\n"


def check_variants(script: str | Path, out: str | Path, variants: Sequence[str],
                   clips: Sequence[tuple[str, int, int]] = TRAIN_CLIPS, data: str | Path = TRAIN_DIR) -> int:
    """Run a trial's points script (``SCRIPT CLIP FRAMES REDUCE VARIANT OUT``) on every clip for
    each variant: one process per variant at a time, all variants at once, one thread each, the
    clips one after another (what each trial's ``train_check.sh`` did in its own copy of the
    loop). Returns the first non-zero exit status, else 0."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": "."}

    def chain(variant: str) -> int:
        for name, frames, reduce in clips:
            rc = subprocess.call([sys.executable, str(script), str(Path(data) / name), str(frames), str(reduce),
                                  variant, str(out)], env=env)
            if rc:
                return rc
        return 0
    with ThreadPoolExecutor(max(len(variants), 1)) as pool:
        return next((rc for rc in pool.map(chain, variants) if rc), 0)


def main(argv: list[str]) -> int:
    """``python -m benchmarks.trials SCRIPT OUT VARIANT ...``: :func:`check_variants` on the
    train clips (``TRAIN_CLIPS`` under ``TRAIN_DIR``)."""
    if len(argv) < 3:
        print("usage: python -m benchmarks.trials SCRIPT OUT VARIANT ...", file=sys.stderr)
        return 2
    return check_variants(argv[0], argv[1], argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
