"""The committed benchmark results are one complete run, and the committed table is made from them."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.codecs import TRADITIONAL
from benchmarks.results import load_records
from benchmarks.table import table

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
# results dir -> the --bpp the README's command used for its table.md
PUBLISHED = {"v1": (0.05, 0.1, 0.2), "v1-s300": (0.05, 0.1, 0.2), "v1-s600": (0.2, 0.3),
             "v2-s300": (0.02, 0.05, 0.1), "v2-medium": (0.02, 0.05, 0.1), "v3-medium": (0.02, 0.05, 0.1),
             "v3-medium-rungs": (0.02, 0.05, 0.1), "v3-tune": (0.02, 0.05, 0.1),
             "v4-guard-97aec1c1": (0.02, 0.05, 0.1), "v4-guard": (0.02, 0.05, 0.1),
             "v4-c8-balanced": (0.02, 0.05, 0.1), "v4-c8-metasgd": (0.02, 0.05, 0.1),
             "v4-adam": (0.02, 0.05, 0.1), "v4-random": (0.02, 0.05, 0.1), "v5-entropy": (0.02, 0.05, 0.1),
             "v5-prefilter": (0.02, 0.05, 0.1), "v5-slow": (0.02, 0.05, 0.1),
             "v5-floor": (0.02, 0.05, 0.1), "v6-srcpx8": (0.02, 0.05, 0.1), "v6-srcpx": (0.02, 0.05, 0.1)}
VERSUS = {"v2-s300": "v1-s300", "v2-medium": "v2-s300", "v3-medium": "v2-medium",
           "v3-medium-rungs": "v3-medium", "v4-guard": "v4-guard-97aec1c1",
           "v4-c8-balanced": "v4-guard", "v4-c8-metasgd": "v4-guard",
          "v5-entropy": "v4-c8-metasgd", "v5-prefilter": "v5-entropy", "v5-slow": "v5-prefilter",
          "v5-floor": "v5-prefilter", "v6-srcpx8": "v5-floor", "v6-srcpx": "v5-floor"}  # results dir -> the earlier run its README command compares with


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_committed_table_is_made_from_the_committed_records(name):
    folder = RESULTS / name
    earlier = RESULTS / VERSUS[name] if name in VERSUS else None
    assert table(folder, bpps=PUBLISHED[name], earlier=earlier) == (folder / "table.md").read_text()


def test_v1_holds_every_point_of_the_protocol_from_one_run():
    recs = load_records(RESULTS / "v1")
    clips = {r["clip"] for r in recs}
    assert len(clips) == 7
    for clip in clips:
        mine = [r for r in recs if r["clip"] == clip]
        for codec in TRADITIONAL:
            assert len([r for r in mine if r["codec"] == codec]) == 6, (clip, codec)
        for codec in ("nervc-meta", "nervc-random"):
            points = [r for r in mine if r["codec"] == codec]
            assert len(points) == 5, (clip, codec)
            assert {r["options"]["steps"] for r in points} == {150}
    assert {r["environment"]["git"] for r in recs} == {recs[0]["environment"]["git"]}
    for r in recs:
        assert r["bits"] == 8 * r["num_bytes"]
        assert r["bpp"] == pytest.approx(r["bits"] / (r["width"] * r["height"] * r["num_frames"]))
