"""The small things a user meets first: --version, one error prefix, readable info, OOM advice."""
from __future__ import annotations

import json
import math
from pathlib import Path

from codec import cli
from codec.cli import main

STREAM = Path(__file__).resolve().parents[1] / "bitstreams" / "conformance" / "v2_delta_q6.nerv"


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("nervc ") and "bitstream 4.0" in out


def test_missing_argument_has_one_prefix(capsys):
    assert main(["decode"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("nervc") == 2 and err.startswith("nervc: error: decode: ") and "nervc decode -h" in err


def test_info_reads_as_lines_and_json(capsys):
    assert main(["info", str(STREAM)]) == 0
    text = capsys.readouterr().out
    assert "{" not in text and "channels 32,24,16,8" in text and "MACs per pixel the network draws" in text
    assert main(["info", str(STREAM), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["bytes"] == STREAM.stat().st_size and d["video"]["frames"] == 5
    assert d["model"]["weights_per_gop"] == sum(math.prod(t["shape"]) for t in d["gops"][0]["tensors"])
    assert 1000 < d["model"]["macs_per_pixel"] < 5000


def test_out_of_memory_is_one_line_with_advice(capsys, monkeypatch):
    def boom(argv):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: not enough memory")
    monkeypatch.setitem(cli.COMMANDS, "encode", (boom, ""))
    assert main(["encode", "a", "b.nerv"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nervc: error: out of memory") and "--gop" in err[0]
