"""benchmarks/decode_memory.py runs end to end on a tiny video: the longer file is a genuine
.nerv (its GOPs re-indexed) that decodes, and every run's peak memory is recorded."""
from __future__ import annotations

import json

from benchmarks import decode_memory
from bitstreams import BitstreamReader


def test_decode_memory_bench_runs(tmp_path):
    out = tmp_path / "res" / "dm.json"
    work = tmp_path / "work"
    res = decode_memory.main(["--frames", "4,12", "--size", "32x24", "--gop", "2", "--steps", "0",
                              "--scale", "1", "--outputs", "y4m", "--work", str(work), "--out", str(out)])
    long = BitstreamReader(work / "video_12f.nerv")
    assert (long.header.num_frames, long.header.num_gops) == (12, 6)
    assert [long.read_gop(i).first_frame for i in range(6)] == [0, 2, 4, 6, 8, 10]
    assert [(r["frames"], r["output"]) for r in res["runs"]] == [(4, "y4m"), (12, "y4m")]
    assert all(r["peak_rss_bytes"] > 10_000_000 for r in res["runs"])  # a python process with torch
    assert json.loads(out.read_text())["growth"][0]["long"] == 12
    assert "| 12 | y4m |" in out.with_suffix(".md").read_text()
