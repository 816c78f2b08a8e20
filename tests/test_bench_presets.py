"""``python -m benchmarks.presets``: records per (clip, preset) that resume, and the table."""
from __future__ import annotations

import json

import pytest

from benchmarks import presets as bp


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("presets")
    argv = ["run", "--quick", "--presets", "ultrafast,medium", "--scale", "0.05", "--results", str(out),
            "--threads", "1"]
    assert bp.main(argv) == 0
    return out, argv


def test_one_record_per_clip_and_preset(results):
    out, _ = results
    recs = bp.load_records(out)
    assert sorted((r["clip"], r["preset"]) for r in recs) == [
        ("carphone_crop96x80", "medium"), ("carphone_crop96x80", "ultrafast"),
        ("carphone_half88x72", "medium"), ("carphone_half88x72", "ultrafast")]
    for r in recs:
        assert r["quality"] == 3 and r["scale"] == 0.05 and r["num_frames"] == 4
        assert r["num_bytes"] > 0 and r["bpp"] == pytest.approx(8 * r["num_bytes"] / (r["megapixels"] * 1e6))
        assert 5 < r["psnr_rgb"] < 60 and r["seconds"] > 0 and r["steps"] >= 1
    steps = {(r["clip"], r["preset"]): r["steps"] for r in recs}
    assert steps[("carphone_crop96x80", "medium")] >= steps[("carphone_crop96x80", "ultrafast")]


def test_a_second_run_reuses_the_records(results, monkeypatch):
    out, argv = results
    before = {p: p.read_text() for p in out.rglob("*.json")}
    monkeypatch.setattr(bp, "run_one", lambda *a, **k: pytest.fail("re-encoded a finished record"))
    assert bp.main(argv) == 0
    assert {p: p.read_text() for p in out.rglob("*.json")} == before


def test_table_has_a_row_per_preset_and_a_cell_per_clip(results, tmp_path):
    out, _ = results
    md = tmp_path / "t.md"
    assert bp.main(["table", "--results", str(out), "--out", str(md)]) == 0
    text = md.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ultrafast") or line.startswith("| medium")]
    assert [r.split("|")[1].strip() for r in rows] == ["ultrafast", "medium"]
    assert all(r.count(" / ") == 2 * 2 for r in rows)  # two clips, "s/MP / dB / bpp" each
    assert "scaled by [0.05]" in text


def test_unknown_preset_fails_before_any_work(tmp_path):
    from nervcore.errors import NervcError
    with pytest.raises(NervcError, match="valid presets"):
        bp.main(["run", "--quick", "--presets", "turbo", "--results", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_cost_model_fit_recovers_known_constants():
    rows = [{"batch": b, "padded_pixels": px, "wall_min": 0.05 + 900e-9 * b * px}
            for px in (25344, 101376, 399360) for b in (2, 8)]
    fixed, ns = bp.fit_cost_model(rows)
    assert fixed == pytest.approx(0.05, rel=1e-6) and ns == pytest.approx(900, rel=1e-6)
    json.dumps(rows)  # records are plain JSON
