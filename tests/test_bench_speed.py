"""benchmarks/speed.py (v2) runs end to end at a toy size and writes its JSON and markdown."""
from __future__ import annotations

import json

from benchmarks import speed
from tests.conftest import DATA


def test_speed_smoke(tmp_path, one_thread):
    out = tmp_path / "speed.json"
    res = speed.main(["--sizes", "48x32", "--threads", "1", "--scale", "0.01", "--rounds", "2",
                      "--decode-sizes", "64x48", "--profile-size", "48x32",
                      "--quality-clip", str(DATA / "fixtures" / "bus_qcif_30f.264"),
                      "--quality-frames", "2", "--quality-steps", "2", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["compare"] == json.loads(json.dumps(res["compare"]))
    cell = saved["compare"][0]
    assert (cell["width"], cell["height"], cell["threads"], cell["batch"], cell["rounds"]) == (48, 32, 1, 8, 2)
    assert list(cell["loops"]) == ["old", "new"] and cell["loops"]["old"]["speedup"] == 1.0
    assert all(v["steps_per_s"] > 0 and v["cpu_speedup"] > 0 for v in cell["loops"].values())
    assert saved["decode"][0]["frames_per_s"] > 0 and saved["device"] == "cpu"
    assert [p["loop"] for p in saved["profile"]] == ["old", "new"]
    # the old loop's per-tensor rate graph is many more ops per step than the flat one
    assert saved["profile"][0]["ops_per_step"] > 2 * saved["profile"][1]["ops_per_step"]
    assert [(q["loop"], q["steps"]) for q in saved["quality"]] == [("old", 2), ("new", 2)]
    assert all(5 < q["psnr"] < 60 and q["bpp"] > 0 for q in saved["quality"])
    assert saved["commit"] and saved["machine"]["loadavg"] is not None
    md = out.with_suffix(".md").read_text()
    assert "| 48x32 | cpu | 1 | 8 |" in md and "Top ops" in md and "| bus_qcif_30f.264 | 2 | 2 | 5 |" in md
    again = speed.main(["--sizes", "40x24", "--threads", "1", "--scale", "0.01", "--rounds", "1",
                        "--decode-sizes", "", "--no-profile", "--append", "--out", str(out)])
    assert [(c["width"], c["height"]) for c in again["compare"]] == [(48, 32), (40, 24)]
    assert len(json.loads(out.read_text())["quality"]) == 2  # kept from the first run
