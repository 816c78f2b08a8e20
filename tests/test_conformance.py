"""The committed conformance streams decode as their expectations say, and the checker bites."""
from __future__ import annotations

import json
import shutil

import numpy as np

from bitstreams import conform


def test_every_conformance_stream_passes(capsys):
    assert conform.main(["check"]) == 0
    out = capsys.readouterr().out
    assert f"{len(conform.STREAMS) + len(conform.INVALID)}/{len(conform.STREAMS) + len(conform.INVALID)}" in out
    names = {p.stem for p in conform.HERE.glob("*.nerv")}
    assert names == {s.name for s in conform.STREAMS} | set(conform.INVALID)


def test_checker_rejects_wrong_frames_weights_and_accepted_garbage(tmp_path):
    for p in conform.HERE.glob("random_odd_2gop.*"):
        shutil.copy(p, tmp_path / p.name)
    ok = conform.check_stream(tmp_path / "random_odd_2gop.json")
    assert ok.ok and "weights exact" in ok.detail

    rgb = tmp_path / "random_odd_2gop.rgb"
    ref = np.fromfile(rgb, np.uint8)
    bumped = ref.copy()
    bumped[123] = (int(bumped[123]) + 3) % 256  # one sample off by more than the tolerance
    bumped.tofile(rgb)
    assert not conform.check_stream(tmp_path / "random_odd_2gop.json").ok
    ref.tofile(rgb)

    spec = json.loads((tmp_path / "random_odd_2gop.json").read_text())
    spec["weights_sha256"][1] = "0" * 64
    (tmp_path / "random_odd_2gop.json").write_text(json.dumps(spec))
    v = conform.check_stream(tmp_path / "random_odd_2gop.json")
    assert not v.ok and "GOP(s) [1]" in v.detail

    spec["valid"], spec["reason"] = False, "nothing wrong"  # a valid stream labelled invalid
    (tmp_path / "random_odd_2gop.json").write_text(json.dumps(spec))
    assert not conform.check_stream(tmp_path / "random_odd_2gop.json").ok
