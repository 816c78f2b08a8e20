"""The held-back split of train/ (metanerv.splits), --split meta, and the data-scaling driver."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import meta_data_curve
from metanerv import splits, tasks, train
from metanerv.init_file import load_init

from tests.conftest import DATA, manifest

pytestmark = pytest.mark.usefixtures("one_thread")


def _train_names() -> list[str]:
    return sorted(r["file"] for r in manifest() if r["role"] == "train")


def test_split_is_disjoint_covers_train_and_holds_back_enough():
    names = _train_names()
    meta, held = splits.split_names(names, "meta"), splits.split_names(names, "held")
    assert not set(meta) & set(held)
    assert sorted(meta + held) == names
    assert set(held) == set(splits.HELD_BACK)  # every held-back clip is a train/ clip
    assert len(held) >= 0.15 * len(names)
    assert set(splits.EVAL_CLIPS) <= set(splits.HELD_BACK)
    # the shipped init saw the 16 old clips: held-back clips come only from the new ones
    assert set(splits.OLD_TRAIN) <= set(names) and not set(splits.OLD_TRAIN) & set(held)
    # spread: no two held-back clips from one source, and they come from at least 10 sources
    sources = splits.train_sources(DATA / "MANIFEST.tsv")
    held_sources = [sources[n] for n in held]
    assert len(set(held_sources)) == len(held_sources) >= 10


def test_nested_subsets_nest_and_spread_over_sources():
    sources = splits.train_sources(DATA / "MANIFEST.tsv")
    meta = splits.split_names(_train_names(), "meta")
    order = splits.nested(meta, sources)
    assert sorted(order) == sorted(meta) and order == splits.nested(list(reversed(meta)), sources)
    for a, b in ((8, 16), (16, 32), (32, len(meta))):
        assert set(splits.nested(meta, sources, a)) <= set(splits.nested(meta, sources, b))
    assert len({sources[n] for n in order[:8]}) == 8
    with pytest.raises(Exception):
        splits.nested(meta, sources, len(meta) + 1)


def _folder(tmp_path: Path, names: dict[str, str]) -> Path:
    d = tmp_path / "train"
    d.mkdir()
    for link, fixture in names.items():
        (d / link).symlink_to(DATA / "fixtures" / fixture)
    return d


TINY = ["--tiny", "--sides", "32,48", "--frames", "4", "--frames-start", "2", "--batch", "3",
        "--inner-steps", "2", "--max-frames", "8", "--short-side", "64", "--quiet", "--threads", "1"]


def test_split_meta_never_opens_a_held_back_clip(tmp_path, monkeypatch):
    held = splits.HELD_BACK[0]
    d = _folder(tmp_path, {"bus_qcif_30f.264": "bus_qcif_30f.264", held: "desk_320x240_36f.mp4"})
    opened = []
    real = tasks.read_video

    def spy(path, *a, **k):
        opened.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(tasks, "read_video", spy)
    out = tmp_path / "i.safetensors"
    assert train.main([str(d), "--out", str(out), "--split", "meta", "--steps", "6", "--warm-cache",
                       *TINY]) == 0
    assert opened and held not in opened
    assert load_init(out).info["split"] == {"name": "meta", "clips": ["bus_qcif_30f.264"]}
    # and a resume on another split is refused
    assert train.main([str(d), "--out", str(out), "--split", "all", "--steps", "8", "--resume", *TINY]) == 1


def test_data_curve_driver_tiny(tmp_path):
    """Two tiny runs (1 and 2 clips), two snapshots each, measured on one held-back clip; a
    second call resumes from what is there and trains nothing."""
    held = "64_archery_320x240_96f.mp4"
    d = _folder(tmp_path, {"bus_qcif_30f.264": "bus_qcif_30f.264", "desk_320x240_36f.mp4": "desk_320x240_36f.mp4",
                           held: "bus_qcif_30f.264"})
    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["--data", str(d), "--runs", "1:1,all:1", "--snapshots", "4,8", "--train-args", " ".join(TINY),
            "--frame-cache", "", "--eval-clips", held, "--steps", "2,4", "--frames", "4", "--scale", "4",
            "--reference", "", "--work", str(work), "--out", str(out), "--quiet"]
    assert meta_data_curve.main(argv) == 0
    res = json.loads((out / "curve.json").read_text())
    assert [(r["clips"], r["tasks"]) for r in res["rows"]] == [(1, 4), (1, 8), (2, 4), (2, 8)]
    assert held not in res["runs"]["2:1"]["clips"] and len(res["runs"]["1:1"]["clips"]) == 1
    assert set(res["rows"][0]["lead"]) == {"2", "4"}
    assert (out / "table.md").read_text().count("\n| ") >= 5 and (out / "curve.png").stat().st_size > 1000
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".md", ".png"]
    mtime = (work / "c2-s1" / "t8.safetensors").stat().st_mtime_ns
    assert meta_data_curve.main(argv) == 0
    assert (work / "c2-s1" / "t8.safetensors").stat().st_mtime_ns == mtime
    # a run given a later snapshot continues from its checkpoint to it
    argv[argv.index("1:1,all:1")] = "all:1:4/8/12"
    assert meta_data_curve.main(argv) == 0
    res = json.loads((out / "curve.json").read_text())
    assert [(r["clips"], r["tasks"]) for r in res["rows"]] == [(2, 4), (2, 8), (2, 12)]
    assert "--steps 6" in res["runs"]["2:1"]["snapshots"]["12"]["command"]
    assert (work / "c2-s1" / "t8.safetensors").stat().st_mtime_ns == mtime
