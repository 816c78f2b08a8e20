"""Native-resolution adaptation benchmark: the encoder's fitting loop, 8-bit PSNR, resumable
per-(clip, init, steps) records, on fixture clips with a tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import adaptation
from codec.metrics import rgb_psnr
from codec.finetune import FitSettings, fit_gop
from metanerv.init_file import save_init
from metanerv.model import build_model, frame_times, grid_size_for, pad_to_stride
from metanerv.train import tiny_config
from nervcore.video_io import read_video

from tests.conftest import DATA, link_fixture_clips

CLIPS = ("bus_qcif_30f.264", "desk_320x240_36f.mp4")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return link_fixture_clips(tmp_path_factory.mktemp("clips"), CLIPS)


def _frames(n: int = 5) -> np.ndarray:
    return read_video(DATA / "fixtures" / CLIPS[0], frames=slice(0, n)).frames[:, :40, :56]


def test_encoder_fit_is_the_encoders_loop():
    """Bit-identical to the decoder's weights after codec.finetune.fit_gop: the benchmark measures
    what the encoder writes."""
    cfg = tiny_config()
    frames = _frames()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    target = pad_to_stride(x, cfg.total_stride)
    model = build_model(cfg, grid_size_for(40, 56, cfg), seed=3)
    ours = adaptation.encoder_fit(model, target, 7, lr=4e-3, batch=3, seed=5, lam=0.5)
    coded = fit_gop(model, target, None, FitSettings(steps=7, lr=4e-3, batch=3, seed=5, lam=0.5),
                    5 * target.shape[2] * target.shape[3], progress=False)
    theirs = coded.weights(None)
    assert set(ours) == set(theirs)
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k


def test_psnr8_is_the_encoders_metric():
    cfg = tiny_config()
    frames = _frames()
    model = build_model(cfg, grid_size_for(40, 56, cfg), seed=0)
    weights = dict(model.named_parameters())
    with torch.no_grad():
        y = model(frame_times(list(range(5)), 5))[..., :40, :56]
    decoded = y.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert adaptation.psnr8(model, weights, frames, batch=2) == pytest.approx(rgb_psnr(decoded, frames), abs=1e-9)


def test_native_benchmark_tiny_and_resumable(clip_dir, tmp_path):
    init = tmp_path / "tiny.safetensors"
    save_init(init, tiny_config(), build_model(tiny_config(), (2, 2), seed=0).state_dict())
    js, png, res = tmp_path / "n.json", tmp_path / "n.png", tmp_path / "records"
    argv = ["--data", str(clip_dir), "--init", f"tiny={init}", "--init", "random=random",
            "--steps", "0,2,3", "--frames", "3", "--batch", "2", "--scale", "4", "--threads", "1",
            "--jobs", "1", "--results", str(res), "--out-json", str(js), "--out-png", str(png), "--quiet"]
    assert adaptation.main(argv) == 0 and png.stat().st_size > 1000
    out = json.loads(js.read_text())
    assert out["protocol"] == adaptation.NATIVE_PROTOCOL and out["steps"] == [0, 2, 3]
    assert set(out["clips"]) == {"bus_qcif_30f", "desk_320x240_36f"}
    assert (out["clips"]["bus_qcif_30f"]["height"], out["clips"]["bus_qcif_30f"]["width"]) == (36, 44)
    assert (out["clips"]["desk_320x240_36f"]["height"], out["clips"]["desk_320x240_36f"]["width"]) == (60, 80)
    for clip in out["clips"].values():
        assert clip["frames"] == 3
        for curve in clip["psnr"].values():
            assert set(curve) == {"0", "2", "3"} and all(5 < v < 60 for v in curve.values())
    assert len(list(res.rglob("s*.json"))) == 2 * 2 * 3
    # random weights take the named init's shape, and their records say which shape
    rand = json.loads((res / "bus_qcif_30f" / "random" / "s2.json").read_text())
    assert rand["init_id"] == "random-" + "-".join(map(str, tiny_config().channels))
    assert adaptation._load_inits([("r", "random")])[0]["r"][2] == "random"  # NeRVConfig()'s, as before
    # resume: an existing record with matching settings is reused, not recomputed ...
    rec_path = res / "bus_qcif_30f" / "tiny" / "s2.json"
    rec = json.loads(rec_path.read_text())
    rec["psnr"] = 99.0
    rec_path.write_text(json.dumps(rec))
    assert adaptation.main(argv) == 0
    assert json.loads(js.read_text())["clips"]["bus_qcif_30f"]["psnr"]["tiny"]["2"] == 99.0
    # ... unless its settings differ or --force says so
    assert adaptation.main(argv + ["--force", "--clips", "bus_qcif_30f", "--steps", "2"]) == 0
    assert json.loads(rec_path.read_text())["psnr"] == pytest.approx(out["clips"]["bus_qcif_30f"]["psnr"]["tiny"]["2"])


def test_native_clips_follow_the_rd_protocol():
    """The default folder gives the RD protocol's clips: coffee_720p reduced 4x by a box filter."""
    bench = adaptation.BENCH_DIR
    if not bench.is_dir():
        pytest.skip("no benchmark data")
    clips = {c.name: c for c in adaptation.native_clips(bench, 16, 1)}
    assert clips["coffee_320x180"].downscale == 4 and clips["carphone_qcif_120f"].downscale == 1
    assert all(c.frames == 16 for c in clips.values())
    assert {c.downscale for c in adaptation.native_clips(bench, 16, 2)} == {2, 8}
