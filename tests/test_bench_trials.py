"""benchmarks/trials.py: the plumbing every encoder trial's records and tables go through."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from benchmarks.trials import bd_tables, check_variants, distinct_rungs, load_clip, load_points, run_point
from tests.conftest import DATA

BUS = DATA / "fixtures" / "bus_qcif_30f.264"


def test_load_clip_box_reduces_the_first_frames():
    full = load_clip(BUS, 3)
    half = load_clip(BUS, 3, reduce=2)
    assert full.frames.shape == (3, 144, 176, 3)
    assert half.frames.shape == (3, 72, 88, 3) and half.frames.dtype == np.uint8
    box = full.frames[0, :2, :2].astype(np.float64).mean(axis=(0, 1))  # one output pixel = a 2x2 box
    assert np.abs(half.frames[0, 0, 0] - box).max() <= 1.0


def test_run_point_appends_measured_records_of_written_files(tmp_path):
    out = tmp_path / "points.jsonl"
    calls = []
    recs = run_point(BUS, 2, 4, "v1", out, patch=lambda: calls.append(1), qualities=(1, 5), steps=2,
                     scale=1)
    assert calls == [1]
    assert [r["q"] for r in recs] == [1, 5]
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    assert [(r["clip"], r["variant"], r["q"]) for r in lines] == [("bus_qcif_30f.264", "v1", 1),
                                                                  ("bus_qcif_30f.264", "v1", 5)]
    for r in lines:
        assert r["source"] == "44x36" and r["frames"] == 2 and r["steps"] == 2
        assert r["bpp"] == pytest.approx(8 * r["bytes"] / (44 * 36 * 2))
        assert 5.0 < r["psnr"] < 60.0 and 0.0 < r["ms_ssim"] <= 1.0
        assert r["settings"] == {"steps": "2", "scale": "1"}
    assert lines[0]["bytes"] != lines[1]["bytes"]  # two rungs, two files


def _rec(clip, v, q, bpp, psnr, ssim=0.9):
    return {"clip": clip, "variant": v, "q": q, "bpp": bpp, "psnr": psnr, "ms_ssim": ssim, "steps": 10}


def test_bd_tables_compare_each_variant_with_the_anchor(tmp_path):
    path = tmp_path / "p.jsonl"
    recs = []
    for q, (r, p) in enumerate([(0.01, 20.0), (0.02, 23.0), (0.04, 26.0), (0.08, 29.0)], start=1):
        recs.append(_rec("a.mp4", "base", q, r, p, 0.80 + 0.03 * q))
        recs.append(_rec("a.mp4", "cheap", q, 0.9 * r, p, 0.80 + 0.03 * q))  # same picture, 10 % fewer bits
        recs.append(_rec("b.mp4", "base", q, r, p))
        recs.append(_rec("b.mp4", "cheap", q, 1.1 * r, p))  # 10 % more
    recs.append(_rec("b.mp4", "cheap", 4, 1.1 * 0.08, 29.0))  # a rerun of a point: the later wins
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    pts = load_points(path)
    assert sorted(pts) == ["a.mp4", "b.mp4"] and sorted(pts["a.mp4"]["cheap"]) == [1, 2, 3, 4]
    table = bd_tables(pts, "base")
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in table.splitlines()
            if line.startswith("| ") and "variant" not in line}
    assert "-10.0 %" in rows[("a.mp4", "cheap")] and "+10.0 %" in rows[("b.mp4", "cheap")]
    assert rows[("a.mp4", "base")].count("n/a") == 3  # the anchor is not compared with itself
    summary = [line for line in table.splitlines() if line.startswith("- cheap vs base")]
    assert len(summary) == 1
    mean = float(re.search(r"BD-rate \(PSNR\) ([-+]\d+\.\d) % \(2/2\)", summary[0]).group(1))
    assert mean == pytest.approx(0.0, abs=0.05)  # -10 % and +10 % in the log mean
    assert "fewer bits on 1/2 clips" in summary[0]


def test_check_variants_runs_the_points_script_on_every_clip_for_every_variant(tmp_path):
    """One line per (variant, clip) with the script's argument order; a failing script's status
    comes back (the train_check.sh scripts all go through this)."""
    script = tmp_path / "points.py"
    script.write_text("import os, sys\n"
                      "open(sys.argv[5], 'a').write(' '.join(sys.argv[1:5] + [os.environ['OMP_NUM_THREADS']]) + '\\n')\n"
                      "sys.exit(3 if sys.argv[4] == 'bad' else 0)\n")
    out = tmp_path / "points.jsonl"
    clips = (("a.mp4", 30, 2), ("b.mp4", 16, 1))
    assert check_variants(script, out, ["v1", "v2"], clips=clips, data=tmp_path) == 0
    got = sorted(out.read_text().splitlines())
    assert got == sorted(f"{tmp_path / c} {f} {r} {v} 1" for v in ("v1", "v2") for c, f, r in clips)
    assert check_variants(script, out, ["bad"], clips=clips, data=tmp_path) == 3
    assert len(out.read_text().splitlines()) == 5  # the bad variant stopped after its first clip


def test_distinct_rungs_drop_a_rung_that_copies_a_lower_ones_file():
    rec = lambda q, b, p: {"q": q, "bytes": b, "psnr": p}  # noqa: E731
    rungs = {8: rec(8, 900, 25.0), 6: rec(6, 400, 23.0), 7: rec(7, 900, 25.0), 5: rec(5, 400, 22.0)}
    assert [r["q"] for r in distinct_rungs(rungs)] == [5, 6, 7]  # q8 = q7's file; q6 only shares a size
    assert distinct_rungs({}) == []
