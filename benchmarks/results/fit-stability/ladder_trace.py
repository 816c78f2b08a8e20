"""The bench's nervc ladder of one rd-v2 clip (rungs 1-8 in one encode, as `nervc bench` runs
it), with every fit traced by trace.py (one JSON line per 50 steps per fit), then one line per
rung with its bytes and the encoder's PSNR at the source size.

    CLIP=BasketballPass_416x240_png INIT=benchmarks/inits/c8_coded.safetensors [GUARD=0] \
        PYTHONPATH=. python benchmarks/results/fit-stability/ladder_trace.py
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import benchmarks.protocol as protocol
from benchmarks import codecs

_spec = importlib.util.spec_from_file_location("trace", Path(__file__).with_name("trace.py"))
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))  # patches the fit loop

if __name__ == "__main__":
    clip = {c.name: c for c in protocol.v1_clips(protocol.DATA_ROOT)}[os.environ["CLIP"]]
    video = clip.load()
    points = [codecs.make("nervc-meta", f"q{q}", init=os.environ.get("INIT")) for q in range(1, 9)]
    codecs.Nervc.encode_group(points, video.frames, video.fps)
    for p in points:
        print(json.dumps({"rung": p.quality, "bytes": len(p._prepared),
                          "encoder_psnr": round(p.last_info["encoder_psnr"], 3),
                          "rollbacks": p.last_info["fit_rollbacks"]}), flush=True)
