"""Encode-effort presets: valid names, deterministic, monotone, medium within its budget, and
the encoder and CLI applying them (explicit --steps wins)."""
from __future__ import annotations

import json
import math

import pytest

import codec
from codec import presets
from codec.cli import main
from codec.presets import PRESET_NAMES, PresetSchedule, fit_overrides, schedule, step_seconds, table
from nervcore.errors import NervcError
from nervcore.video_io import Video
from tests.conftest import DATA, REPO, bus_corner

# (width, height, frames): GOPs from tiny to 4K
GOPS = [(176, 144, 1), (176, 144, 30), (176, 144, 120), (352, 288, 64), (352, 288, 120),
        (416, 240, 64), (832, 480, 9), (832, 480, 120), (1280, 720, 120), (1920, 1080, 60),
        (1920, 1080, 1), (51, 37, 3), (16, 16, 1), (3840, 2160, 30)]


def test_names_are_x264s_fastest_first_and_medium_is_the_default():
    assert PRESET_NAMES == ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium",
                            "slow", "slower", "veryslow")
    assert presets.DEFAULT_PRESET == "medium"
    budgets = [presets.PRESETS[p].fit_seconds_per_mp for p in PRESET_NAMES]
    assert budgets == sorted(budgets) and len(set(budgets)) == len(budgets)


@pytest.mark.parametrize("bad", ["Medium", "placebo", "", None, 3, "help"])
def test_unknown_preset_is_a_nervc_error_listing_the_valid_names(bad):
    with pytest.raises(NervcError) as e:
        schedule(bad, 176, 144, 30)
    msg = str(e.value)
    assert all(name in msg for name in PRESET_NAMES) and "\n" not in msg


@pytest.mark.parametrize("args", [(0, 144, 30), (176, 0, 30), (176, 144, 0), (176.0, 144, 3),
                                  (176, 144, 2.5), (True, 144, 3), (176, 144, -1)])
def test_nonsense_gop_sizes_are_rejected(args):
    with pytest.raises(NervcError):
        schedule("medium", *args)


def test_deterministic():
    for p in PRESET_NAMES:
        a = schedule(p, 352, 288, 120)
        assert isinstance(a, PresetSchedule)
        assert a == schedule(p, 352, 288, 120)
        assert a.to_dict() == schedule(p, 352, 288, 120).to_dict()
        assert fit_overrides(p, 352, 288, 120) == a.overrides()


@pytest.mark.parametrize("w,h,n", GOPS, ids=[f"{w}x{h}x{n}" for w, h, n in GOPS])
def test_slower_presets_never_visit_fewer_frames_and_schedules_are_sane(w, h, n):
    rows = table(w, h, n)
    for fast, slow in zip(rows, rows[1:]):
        assert slow.steps * slow.batch >= fast.steps * fast.batch, (fast, slow)
        assert slow.predicted_seconds >= fast.predicted_seconds * 0.999
    frame_px = presets.padded_pixels(w, h)
    for r in rows:
        assert 1 <= r.steps < 100_000 and 1 <= r.batch <= n
        assert r.steps >= presets.MIN_STEPS or r.steps * step_seconds(r.batch, frame_px) > 1.0
        assert r.batch * frame_px <= max(presets.MAX_STEP_PIXELS, frame_px)  # per-step pixel cap
        assert r.lr == presets.PRESETS[r.preset].lr and r.lr > 0
        assert r.predicted_seconds > r.fit_seconds > 0


@pytest.mark.parametrize("w,h,n", [g for g in GOPS if g[0] * g[1] * g[2] >= 500_000],
                         ids=lambda g: str(g))
def test_medium_is_predicted_under_9_5_seconds_per_megapixel(w, h, n):
    """One output, coding and verification decode included, for GOPs of >= 0.5 MP (smaller
    ones are dominated by MIN_STEPS and the per-step fixed cost)."""
    s = schedule("medium", w, h, n)
    assert s.predicted_seconds_per_mp <= 9.5
    assert s.predicted_seconds_per_mp >= 7.0  # and it spends most of its budget (whole steps)
    faster = [schedule(p, w, h, n).predicted_seconds_per_mp for p in PRESET_NAMES[:5]]
    assert faster == sorted(faster) and faster[-1] < s.predicted_seconds_per_mp


def test_batch_is_capped_by_frames_and_by_pixels_per_step():
    assert schedule("medium", 176, 144, 1).batch == 1
    assert schedule("medium", 352, 288, 120).batch == presets.PRESETS["medium"].batch
    assert schedule("veryslow", 3840, 2160, 30).batch == 1
    # the tiniest GOP is budgeted as MIN_BUDGET_MP megapixels
    assert schedule("ultrafast", 16, 16, 1).steps == math.floor(
        presets.PRESETS["ultrafast"].fit_seconds_per_mp * presets.MIN_BUDGET_MP / step_seconds(1, 256))


def test_a_tiny_gop_is_budgeted_as_min_budget_mp():
    """A 64x48 GOP of 16 frames (0.05 MP) got 29 steps at `medium` and drew nothing (issue 34,
    tests/test_flat_colour.py); it is budgeted as MIN_BUDGET_MP now, larger GOPs as before."""
    tiny = schedule("medium", 64, 48, 16)
    assert tiny.steps >= 200 and tiny.megapixels == pytest.approx(64 * 48 * 16 / 1e6)
    assert tiny.fit_seconds == pytest.approx(presets.PRESETS["medium"].fit_seconds_per_mp * presets.MIN_BUDGET_MP,
                                             rel=0.01)
    big = schedule("medium", 176, 144, 30)  # 0.76 MP: its own budget
    assert big.fit_seconds <= presets.PRESETS["medium"].fit_seconds_per_mp * big.megapixels


def test_cost_follows_the_gop_size():
    """Same visits per frame, and so the same cost per megapixel, for a GOP twice as long."""
    a = schedule("slow", 352, 288, 60)
    b = schedule("slow", 352, 288, 120)
    assert abs(a.visits_per_frame - b.visits_per_frame) / a.visits_per_frame < 0.02
    assert b.steps > a.steps
    assert presets.predict_seconds("slow", 352, 288, 240, 120) == pytest.approx(2 * b.predicted_seconds)
    assert presets.predict_seconds("slow", 352, 288, 180, 120) == pytest.approx(
        a.predicted_seconds + b.predicted_seconds)


def test_cost_model_matches_its_calibration_file():
    """The constants are the 1-thread process-CPU fit recorded in
    benchmarks/results/presets_calibration.json, rounded up, and predict every 1-thread cell
    within a factor 1.6 (the batch-8 832x480 cell, 3.2 MP per step, included)."""
    cal = json.loads((REPO / "benchmarks" / "results" / "presets_calibration.json").read_text())
    fit = cal["fits"]["1"]
    assert fit["cpu_ns_per_pixel"] <= presets.NS_PER_PIXEL <= 1.25 * fit["cpu_ns_per_pixel"]
    assert fit["cpu_fixed_s"] <= presets.FIXED_S <= 1.5 * fit["cpu_fixed_s"] + 0.01
    assert presets.OVERHEAD_S_PER_MP >= cal["overhead"]["cpu_seconds_per_mp"]
    cells = [r for r in cal["steps"] if r["threads"] == 1]
    assert len(cells) == 6
    for r in cells:
        predicted = step_seconds(r["batch"], r["padded_pixels"])
        assert r["cpu_min"] / 1.6 <= predicted <= r["cpu_min"] * 1.6, r


def test_table_text_lists_every_preset():
    text = presets.table_text()
    assert all(p in text for p in PRESET_NAMES) and "352x288x120" in text
    assert "(default)" in next(line for line in text.splitlines() if "medium" in line)
    tops = [int(next(line for line in text.splitlines() if line.split()[:1] == [p]).split()[5])
            for p in PRESET_NAMES]
    assert tops == sorted(tops) and tops[-1] == 8 and tops[PRESET_NAMES.index("medium")] >= 5


# ---- the encoder and the CLI apply the presets

@pytest.fixture(scope="module")
def tiny() -> Video:
    return bus_corner(3)


def test_encoder_takes_steps_from_the_preset_unless_given(tiny, tmp_path, one_thread):
    want = schedule("ultrafast", 48, 32, 3)
    r = codec.encode(tiny, tmp_path / "a.nerv", preset="ultrafast", init="random", progress=False)
    assert (r.preset, r.steps) == ("ultrafast", want.steps)
    assert r.total_seconds >= r.encode_seconds > 0
    r = codec.encode(tiny, tmp_path / "b.nerv", preset="ultrafast", steps=2, init="random",
                     progress=False)
    assert r.steps == 2
    with pytest.raises(NervcError, match="veryslow"):
        codec.encode(tiny, tmp_path / "c.nerv", preset="turbo", progress=False)
    assert not (tmp_path / "c.nerv").exists()


def test_a_cheaper_tune_gets_more_steps_for_the_same_budget(tiny, tmp_path, one_thread):
    """--tune psnr skips the SSIM blurs (a step costs TUNE_STEP_COST["psnr"] of a balanced one):
    the preset's budget buys it more steps, at no more predicted seconds, and the encoder runs
    them; the other tunes are priced alike; an unknown tune is one NervcError."""
    from codec.finetune import DISTORTIONS
    assert set(presets.TUNE_STEP_COST) == set(DISTORTIONS)
    for w, h, n in [(176, 144, 120), (352, 288, 64), (832, 480, 9)]:
        bal, ssim, fast = (schedule("medium", w, h, n, tune=t) for t in ("balanced", "ssim", "psnr"))
        assert bal == ssim
        assert fast.steps > 1.15 * bal.steps and fast.fit_seconds <= 8.5 * bal.megapixels + 1e-9
        assert fast.fit_seconds == pytest.approx(bal.fit_seconds, rel=0.02)
        assert presets.auto_coded_size("medium", w, h, n, tune="psnr") >= presets.auto_coded_size("medium", w, h, n)
    want = schedule("veryslow", 48, 32, 3, tune="psnr").steps
    assert want > schedule("veryslow", 48, 32, 3).steps
    r = codec.encode(tiny, tmp_path / "a.nerv", preset="veryslow", init="random", tune="psnr", progress=False)
    assert r.steps == want
    with pytest.raises(NervcError, match="--tune must be one of"):
        schedule("medium", 176, 144, 120, tune="vmaf")


def test_encoder_sums_steps_over_gops(tiny, tmp_path, one_thread):
    r = codec.encode(tiny, tmp_path / "a.nerv", preset="ultrafast", init="random", gop=2, progress=False)
    assert r.steps == schedule("ultrafast", 48, 32, 2).steps + schedule("ultrafast", 48, 32, 1).steps


def test_cli_preset_help_and_summary(tiny, tmp_path, capsys, one_thread):
    assert main(["encode", "--preset", "help"]) == 0
    assert "veryslow" in capsys.readouterr().out
    src = DATA / "fixtures" / "bus_qcif_30f.264"
    out = tmp_path / "o.nerv"
    assert main(["encode", str(src), str(out), "--frames", "0:2", "--steps", "1", "--init", "random",
                 "--quiet", "--preset", "fast"]) == 0
    text = capsys.readouterr().out
    assert "preset fast (--steps given): 1 steps" in text and "steps/s" in text and "s/MP" in text
    assert main(["encode", str(src), str(tmp_path / "u.nerv"), "--frames", "0:2", "--init", "random",
                 "--quiet", "--preset", "ultrafast"]) == 0
    text = capsys.readouterr().out
    assert f"preset ultrafast: {presets.MIN_STEPS} steps" in text and "predicted" in text
    assert main(["encode", str(src), str(tmp_path / "x.nerv"), "--preset", "turbo", "--quiet"]) == 1
    assert "valid presets: ultrafast" in capsys.readouterr().err
    assert not (tmp_path / "x.nerv").exists()
