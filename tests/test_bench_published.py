"""The published benchmark results are curves made by ``nervc bench``, and each table is made from them.

Every folder under ``benchmarks/results/`` that holds bench records is a published run; it is
found here, not listed, so keeping or dropping a run needs no test edit.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from benchmarks.results import METRICS, load_records
from benchmarks.table import table

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
NOT_RESULTS = {".nerv", ".py", ".sh", ".patch", ".log", ".jsonl", ".txt"}  # regenerable or code


def _runs() -> list[Path]:
    """Folders whose ``<clip>/<codec>/<point>.json`` records ``nervc bench`` wrote."""
    return sorted({p.parents[2] for p in RESULTS.glob("*/*/*/*.json")})


RUNS = _runs()


def test_there_is_a_published_run_and_nothing_but_results():
    assert RUNS, "no published bench run under benchmarks/results/"
    stray = [str(p.relative_to(RESULTS)) for p in RESULTS.rglob("*") if p.suffix in NOT_RESULTS]
    assert not stray, f"scripts, logs or bitstreams under benchmarks/results/: {stray[:5]}"


def _table_settings(md: str) -> tuple[str, tuple[float, ...]]:
    """The metric and the rates a committed table.md was made with, read from its own text."""
    metric = next(m for m, label in METRICS.items() if f"quality = {label};" in md)
    head = next(line for line in md.splitlines() if line.startswith("| codec |"))
    return metric, tuple(float(b) for b in re.findall(r"@ ([0-9.]+) bpp", head))


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_table_is_made_from_the_records(run):
    md = (run / "table.md").read_text()
    metric, bpps = _table_settings(md)
    assert bpps
    assert table(run, metric=metric, bpps=bpps) == md


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_records_are_one_consistent_run(run):
    recs = load_records(run)
    assert (run / "rd.png").is_file()
    assert len({r["protocol"] for r in recs}) == 1
    by_codec = defaultdict(set)
    for r in recs:
        assert r["bits"] == 8 * r["num_bytes"]
        assert r["bpp"] == pytest.approx(r["bits"] / (r["width"] * r["height"] * r["num_frames"]))
        by_codec[r["codec"]].add((r["environment"]["git"], r["version"], r.get("options", {}).get("preset")))
    for codec, made_by in by_codec.items():
        assert len(made_by) == 1, f"{run.name}: {codec} records from several commits or settings: {made_by}"
    clips = {r["clip"] for r in recs}
    for codec in by_codec:  # every codec on every clip, with the same points
        points = {c: {r["point"] for r in recs if r["codec"] == codec and r["clip"] == c} for c in clips}
        assert len({frozenset(p) for p in points.values()}) == 1, (run.name, codec)


def _better(point: str) -> float:
    """Sort key: larger = a point that should spend more bytes (a higher -q rung, a lower CRF)."""
    kind, num = re.fullmatch(r"([a-z]+)(\d+)", point).groups()
    return float(num) if kind == "q" else -float(num)


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_bytes_grow_along_each_ladder(run):
    curves = defaultdict(list)
    for r in load_records(run):
        curves[r["clip"], r["codec"]].append(r)
    for (clip, codec), pts in curves.items():
        sizes = [r["num_bytes"] for r in sorted(pts, key=lambda r: _better(r["point"]))]
        assert sizes == sorted(sizes), f"{run.name} {clip} {codec}: bytes not monotone in the ladder: {sizes}"
