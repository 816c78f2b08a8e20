"""Spatial guidance is opt-in for ``nervc meta-train`` (benchmarks/results/guidance-c8/): the
default trains on the final output alone, ``--spatial`` adds the multi-resolution loss, and
the init file records which."""
from __future__ import annotations

import pytest

from metanerv.init_file import load_init
from metanerv.train import main
from tests.conftest import link_fixture_clips


@pytest.mark.parametrize("flag,want", [([], None), (["--spatial"], [0.1, 0.15, 0.25, 0.5])])
def test_spatial_guidance_is_off_unless_asked(tmp_path, flag, want, one_thread):
    (tmp_path / "clips").mkdir()
    clips = link_fixture_clips(tmp_path / "clips", ("bus_qcif_30f.264",))
    out = tmp_path / "i.safetensors"
    assert main([str(clips), "--out", str(out), "--tiny", "--quiet", "--steps", "2", *flag]) == 0
    got = load_init(out).info["spatial_guidance"]
    assert got is None if want is None else got == pytest.approx(want)
