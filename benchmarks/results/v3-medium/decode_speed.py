"""Decode fps of the published q5 streams, this run (coded size) against v2-medium (full size),
best of 3, the whole clip, in this process with N torch threads (the decoder's own path).

    PYTHONPATH=. python benchmarks/results/v3-medium/decode_speed.py 1 2 > benchmarks/results/v3-medium/decode_speed.md
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from bitstreams import BitstreamReader
from codec.decoder import decode

HERE = Path(__file__).resolve().parent
V2 = HERE.parent / "v2-medium"


def fps(path: Path) -> float:
    best = min(decode(path, device="cpu").decode_seconds for _ in range(3))
    return BitstreamReader(path).header.num_frames / best


def main(threads: list[int]) -> None:
    print("| clip | coded (v3) | " + " | ".join(f"v3 fps, {t} thr | v2 fps, {t} thr" for t in threads) + " |")
    print("|---|---|" + "---|---|" * len(threads))
    for clip in sorted(p.name for p in HERE.iterdir() if (p / "nervc-meta" / "q5.nerv").is_file()):
        v3, v2 = HERE / clip / "nervc-meta" / "q5.nerv", V2 / clip / "nervc-meta" / "q5.nerv"
        h = BitstreamReader(v3).header
        cells = []
        for t in threads:
            torch.set_num_threads(t)
            cells += [f"{fps(v3):.0f}", f"{fps(v2):.0f}"]
        print(f"| {clip} | {h.coded_width}x{h.coded_height} of {h.width}x{h.height} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1])
