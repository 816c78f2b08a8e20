"""benchmarks/decode_speed.py runs end to end at a toy size and writes its JSON and markdown."""
from __future__ import annotations

import json

from pathlib import Path

from benchmarks import decode_speed

STREAM = Path(__file__).resolve().parents[1] / "bitstreams" / "conformance" / "absolute_odd_3gop.nerv"


def test_decode_speed_smoke(tmp_path, one_thread):
    stream = STREAM
    out = tmp_path / "d.json"
    res = decode_speed.main(["--sizes", "48x32", "--threads", "1,2", "--rounds", "2",
                             "--stream", str(stream), "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["compare"] == json.loads(json.dumps(res["compare"]))
    c = saved["compare"][0]
    assert (c["width"], c["height"], c["threads"], c["rounds"]) == (48, 32, 1, 2)
    assert c["fps"]["forward"] > 0 and c["fps"]["render"] > 0 and c["speedup"]["forward"] == 1.0
    assert saved["streams"][0]["frames"] > 0 and saved["streams"][0]["fps"] > 0
    assert "render-frames" in saved["compare"][1]["fps"]  # the decoder's threaded path at 2 threads
    assert "| 48x32 | 1 |" in out.with_suffix(".md").read_text()
