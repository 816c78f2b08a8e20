"""The CLI entry points, called directly as ``main(argv)``."""
from __future__ import annotations

import re

import pytest
import torch

from codec.cli import main
from nervcore.video_io import read_video
from tests.conftest import DATA


def test_demo_runs_on_the_bundled_clip(tmp_path, capsys):
    assert main(["demo", "--frames", "0:4", "--steps", "2", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"PSNR \(RGB, 8-bit\): [\d.]+ dB", out)
    assert re.search(r"[\d.]+ bpp", out) and "decode:" in out
    assert read_video(tmp_path / "demo.mp4").num_frames == 4


def test_encode_decode_cli_round_trip_with_frame_range(tmp_path, capsys):
    src = DATA / "fixtures" / "bus_qcif_30f.264"
    nerv, mkv = tmp_path / "b.nerv", tmp_path / "b.mkv"
    assert main(["encode", str(src), str(nerv), "--frames", "2:8", "--steps", "2",
                 "--init", "random", "--quiet"]) == 0
    assert main(["decode", str(nerv), str(mkv), "--frames", "1:3", "--quiet", "--device", "cpu"]) == 0
    assert read_video(mkv).frames.shape == (2, 144, 176, 3)


def test_usage_and_unknown_command(capsys):
    assert main([]) != 0
    assert main(["frobnicate"]) != 0
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_request_without_gpu_is_a_clear_error(tmp_path, capsys):
    src = DATA / "fixtures" / "bus_qcif_30f.264"
    nerv = tmp_path / "c.nerv"
    assert main(["encode", str(src), str(nerv), "--frames", "0:2", "--steps", "1", "--init", "random", "--quiet"]) == 0
    assert main(["decode", str(nerv), str(tmp_path / "c.mp4"), "--device", "cuda"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0]
    assert not (tmp_path / "c.mp4").exists()
