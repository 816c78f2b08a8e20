"""The ladder's budget floor: a -q rung's rate weight is raised to what a fit this short can
still turn into picture (codec.ladder.lam_floor); an explicit --lam or --bpp is never raised."""
from __future__ import annotations

import pytest

import codec
from codec.cli import main
from codec.ladder import LADDER, QUALITY_LEVELS, REF_REDUCTION, floor_rung, lam_floor, rung_lam, rung_weight
from codec.presets import PRESET_NAMES, schedule
from nervcore.video_io import Video
from tests.conftest import DATA, bus_corner

VISITS = [0.4, 1.0, 2.4, 4.0, 6.4, 13.5, 27.1, 37.5, 54.1, 200.0]


def test_the_floor_is_a_ladder_rung_that_falls_with_the_budget():
    floors = [lam_floor(v) for v in VISITS]
    assert all(a >= b > 0 for a, b in zip(floors, floors[1:])), floors
    assert floors[0] > floors[-1]
    assert set(floors) <= {r.lam for r in LADDER.values()}  # raised rungs copy a real rung
    assert lam_floor(0) == 0.0 and floor_rung(0) == max(LADDER)  # no fit: every rung's lam stands
    assert lam_floor(1e-3) == LADDER[1].lam and lam_floor(1e6) == LADDER[8].lam
    for v in VISITS:
        lams = [rung_lam(q, v) for q in QUALITY_LEVELS]
        assert all(lam >= LADDER[q].lam for q, lam in zip(QUALITY_LEVELS, lams))
        assert all(a >= b for a, b in zip(lams, lams[1:])), (v, lams)  # still a ladder
        k = floor_rung(v)
        assert lams[k - 1] == LADDER[k].lam and all(lam == LADDER[k].lam for lam in lams[k - 1:])
        assert lams[:k - 1] == [LADDER[q].lam for q in QUALITY_LEVELS[:k - 1]]  # the rest untouched
    assert rung_lam(1, 6.4) == LADDER[1].lam  # the low rungs are untouched at the default preset
    assert rung_lam(8, 200.0) == LADDER[8].lam  # and the whole ladder at a long enough fit


def test_the_default_rung_is_not_raised_at_any_preset_of_a_cif_gop():
    """-q 5 keeps its lam from medium up; the floor only trims rungs the fit cannot use."""
    for p in PRESET_NAMES[PRESET_NAMES.index("medium"):]:
        s = schedule(p, 352, 288, 120)
        visits = s.steps * s.batch / 120
        assert rung_lam(5, visits) == LADDER[5].lam, p
        assert rung_lam(5, visits, 1.0) == rung_weight(LADDER[5].lam, 1.0), p  # as fitted at the source size


@pytest.fixture(scope="module")
def tiny() -> Video:
    return bus_corner(4)


def test_a_short_fit_copies_the_floor_rung_and_keeps_explicit_lams(tiny, tmp_path, one_thread):
    short = dict(steps=2, batch=1)  # half a visit per frame; the clip is coded at its own size
    k = floor_rung(2 * 1 / 4, 1.0)
    assert 1 < k < 7  # the case under test: q7 and q8 raised, q1 not
    kw = dict(init="random", progress=False)
    r = codec.encode_ladder(tiny, {q: tmp_path / f"q{q}.nerv" for q in (1, k, 7, 8)}, **short, **kw)
    assert [r[q].lam for q in (1, k, 7, 8)] == [rung_weight(LADDER[1].lam, 1.0)] + [rung_weight(LADDER[k].lam, 1.0)] * 3
    copy = (tmp_path / f"q{k}.nerv").read_bytes()  # raised rungs are the floor rung's file
    assert (tmp_path / "q7.nerv").read_bytes() == copy == (tmp_path / "q8.nerv").read_bytes()
    assert (tmp_path / "q1.nerv").read_bytes() != copy
    alone = codec.encode(tiny, tmp_path / "a.nerv", quality=8, **short, **kw)  # one rung: the same bytes
    assert (tmp_path / "a.nerv").read_bytes() == copy and alone.lam == rung_weight(LADDER[k].lam, 1.0)
    explicit = codec.encode(tiny, tmp_path / "e.nerv", lam=LADDER[8].lam, **short, **kw)
    assert explicit.lam == pytest.approx(LADDER[8].lam)  # an explicit weight is never raised nor rescaled
    long = codec.encode(tiny, tmp_path / "l.nerv", quality=8, steps=100, batch=4, init="random",
                        progress=False)
    assert long.lam == pytest.approx(rung_weight(LADDER[8].lam, 1.0))  # 100 visits per frame: no floor


def test_a_rung_weighs_bits_per_source_pixel():
    """At REF_REDUCTION a rung keeps the ladder's weight; coded at the source size it weighs
    REF_REDUCTION times more per coded pixel, so both trade rate and picture per source pixel alike."""
    assert rung_weight(LADDER[5].lam, 1 / REF_REDUCTION) == pytest.approx(LADDER[5].lam)
    assert rung_weight(LADDER[5].lam, 1.0) == pytest.approx(LADDER[5].lam * REF_REDUCTION)
    for share in (1.0, 0.25, 1 / 16):  # the floor snaps to the rungs' own weights at that size
        for v in VISITS:
            assert lam_floor(v, share) in {rung_weight(r.lam, share) for r in LADDER.values()}
            k = floor_rung(v, share)
            assert rung_lam(k, v, share) == rung_weight(LADDER[k].lam, share) or k == max(LADDER)


def test_cli_says_when_a_rung_was_raised(tiny, tmp_path, capsys, one_thread):
    src = DATA / "fixtures" / "bus_qcif_30f.264"
    assert main(["encode", str(src), str(tmp_path / "a.nerv"), "--frames", "0:2", "--init", "random",
                 "--quiet", "--steps", "1", "--batch", "1", "-q", "8"]) == 0
    assert "-q 8 fitted as -q " in capsys.readouterr().out
    assert main(["encode", str(src), str(tmp_path / "b.nerv"), "--frames", "0:2", "--init", "random",
                 "--quiet", "--steps", "1", "--batch", "1", "-q", "1"]) == 0
    assert "fitted as" not in capsys.readouterr().out
