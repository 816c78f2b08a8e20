"""End to end: ``nervc bench --quick`` writes records that resume, plot and tabulate."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench, codecs
from benchmarks.protocol import QUICK_PROTOCOL_VERSION

FIELDS = {"protocol", "clip", "codec", "version", "point", "options", "bitstream", "num_bytes",
          "bits", "width", "height", "num_frames", "bpp", "psnr_rgb", "psnr_y", "psnr_u",
          "psnr_v", "psnr_yuv", "ms_ssim", "encode_seconds", "decode_seconds", "decode_fps"}


def _quick_codecs() -> list[str]:
    """Every codec that can run here: nervc-meta needs the shipped init."""
    names = list(codecs.TRADITIONAL)
    if codecs.nervc_available():
        names.append("nervc-random")
        from metanerv.init_file import DEFAULT_INIT
        if DEFAULT_INIT.is_file():
            names.append("nervc-meta")
    return names


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("rd")
    names = _quick_codecs()
    rc = bench.main(["--quick", "--results", str(out), "--codecs", ",".join(names), "--no-progress"])
    assert rc == 0
    return out, names


def test_quick_run_writes_one_record_per_point(quick_results):
    out, names = quick_results
    recs = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    assert len(recs) == 2 * 2 * len(names)  # 2 clips x 2 points x codecs
    for r in recs:
        assert FIELDS <= r.keys()
        assert r["protocol"] == QUICK_PROTOCOL_VERSION
        bs = out / r["clip"] / r["codec"] / r["bitstream"]
        size = bs.stat().st_size
        assert r["num_bytes"] == size
        assert r["bpp"] == pytest.approx(8 * size / (r["width"] * r["height"] * r["num_frames"]))
        assert 5 < r["psnr_rgb"] < 100 and 0 < r["ms_ssim"] <= 1
        assert r["encode_seconds"] > 0 and r["decode_fps"] > 0


def test_second_run_reuses_everything(quick_results, capsys):
    out, names = quick_results
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    assert bench.main(["--quick", "--results", str(out), "--codecs", ",".join(names), "--no-progress"]) == 0
    assert "0 to run" in capsys.readouterr().err
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}


def test_narrowing_and_dry_run(quick_results, capsys):
    out, _ = quick_results
    args = ["--quick", "--results", str(out), "--codecs", "x264", "--clips", "carphone_crop96x80",
            "--points", "crf32", "--dry-run", "--force"]
    assert bench.main(args) == 0
    assert capsys.readouterr().out.split() == ["run", "carphone_crop96x80", "x264", "crf32"]
    assert bench.main(["--quick", "--results", str(out), "--codecs", "vp9"]) == 2


def test_plot_and_table(quick_results, tmp_path, capsys):
    out, names = quick_results
    png = tmp_path / "rd.png"
    assert bench.main(["plot", str(out), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bench.main(["table", str(out), "--bpp", "0.5"]) == 0
    text = capsys.readouterr().out
    for name in names:
        assert f"| {name} |" in text
    assert "BD-rate vs x265" in text


def test_nervc_variants_carry_their_tune_in_the_options():
    """A record is reused only with equal options: the tune is one of them, so records of one
    tune are never taken for the other's (the encoder's default tune may change)."""
    from codec.finetune import DEFAULT_TUNE
    meta, ssim = codecs.make("nervc-meta", "q5"), codecs.make("nervc-meta-ssim", "q5")
    assert meta.name == "nervc-meta" and ssim.name == "nervc-meta-ssim"
    assert meta.options["tune"] == DEFAULT_TUNE and ssim.options["tune"] == "ssim"
    assert codecs.make("nervc-random", "q3").options["init"] == "random"
    assert codecs.ladder("nervc-meta-ssim") == codecs.ladder("nervc-meta")
    assert codecs.version("nervc-meta-ssim") == codecs.version("nervc-meta")


def test_the_plain_adam_variant_turns_the_step_sizes_off_and_says_so():
    """nervc-meta-adam (--no-meta-lr) records meta_lr False, so they are never reused for
    nervc-meta's; nervc-meta's options keep their old form (no key), so its records stay valid."""
    meta, adam = codecs.make("nervc-meta", "q5"), codecs.make("nervc-meta-adam", "q5")
    assert "meta_lr" not in meta.options and adam.options["meta_lr"] is False
    assert (meta.meta_lr, adam.meta_lr) == (True, False)
    assert adam.options != meta.options and codecs.ladder("nervc-meta-adam") == codecs.ladder("nervc-meta")
    with pytest.raises(ValueError, match="step sizes"):
        codecs.Nervc.encode_group([meta, adam], None, None)


def test_the_plain_adam_variant_encodes_without_the_step_sizes(monkeypatch):
    """What encode_group hands the encoder: meta_lr False for nervc-meta-adam only."""
    import codec
    seen = []

    def fake(video, outs, **kw):
        seen.append(kw["meta_lr"])
        raise RuntimeError("stop")
    monkeypatch.setattr(codec, "encode_ladder", fake)
    for name in ("nervc-meta", "nervc-meta-adam"):
        with pytest.raises(RuntimeError, match="stop"):
            codecs.Nervc.encode_group([codecs.make(name, "q3")], np.zeros((1, 16, 16, 3), np.uint8), 25)
    assert seen == [True, False]


def test_a_candidate_init_is_benchmarked_under_its_own_id(tmp_path, capsys):
    """``nervc bench --init PATH``: the shipped-init variants encode from PATH, decode with it,
    and their records name its id and path, so they are never reused for the shipped init's."""
    import shutil

    from metanerv.init_file import DEFAULT_INIT, load_init
    if not (codecs.nervc_available() and DEFAULT_INIT.is_file()):
        pytest.skip("needs the nervc API and the shipped init")
    cand = tmp_path / "candidate.safetensors"
    shutil.copy(DEFAULT_INIT, cand)
    meta = codecs.make("nervc-meta", "q5", init=str(cand))
    assert meta.init == str(cand) and meta.options["init"] == str(cand)
    assert codecs.make("nervc-random", "q5", init=str(cand)).init == "random"  # random stays random
    assert codecs.version("nervc-meta", str(cand)) == (
        f"{codecs.Nervc.version('random')} (init {load_init(cand).short_id} from candidate.safetensors)")
    out = tmp_path / "rd"
    args = ["--quick", "--results", str(out), "--codecs", "nervc-meta", "--clips", "carphone_crop96x80",
            "--points", "q5", "--no-progress", "--no-ms-ssim"]
    assert bench.main([*args, "--init", str(cand)]) == 0
    rec = json.loads((out / "carphone_crop96x80" / "nervc-meta" / "q5.json").read_text())
    assert rec["options"]["init"] == str(cand) and "candidate.safetensors" in rec["version"]
    assert 5 < rec["psnr_rgb"] < 100
    capsys.readouterr()
    assert bench.main([*args, "--dry-run"]) == 0  # the shipped init's run does not reuse it
    assert capsys.readouterr().out.split() == ["run", "carphone_crop96x80", "nervc-meta", "q5"]
    assert bench.main([*args, "--init", str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]


def test_the_bench_runs_nervc_at_the_preset_it_is_given(monkeypatch, capsys):
    """``nervc bench --preset slow``: the encoder gets it and the records carry it, so records of
    one preset are never reused for another's; a wrong name is one clear line."""
    import codec
    medium, slow = codecs.make("nervc-meta", "q3"), codecs.make("nervc-meta", "q3", preset="slow")
    assert medium.options["preset"] == codecs.BENCH_PRESET and slow.options["preset"] == "slow"
    assert medium.options != slow.options
    assert "preset" not in codecs.make("nervc-meta", "q3", steps=20, preset="slow").options  # --steps wins
    seen = []

    def fake(video, outs, **kw):
        seen.append(kw["preset"])
        raise RuntimeError("stop")
    monkeypatch.setattr(codec, "encode_ladder", fake)
    with pytest.raises(RuntimeError, match="stop"):
        codecs.Nervc.encode_group([slow], np.zeros((1, 16, 16, 3), np.uint8), 25)
    assert seen == ["slow"]
    with pytest.raises(ValueError, match="preset"):
        codecs.Nervc.encode_group([medium, slow], None, None)
    assert bench.main(["--quick", "--results", "/nonexistent", "--codecs", "nervc-meta", "--preset", "sloww"]) == 2
    assert "--preset" in capsys.readouterr().err
