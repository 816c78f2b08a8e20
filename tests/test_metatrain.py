"""Meta-training end to end on a tiny model: init output, resume, two-process all-reduce,
and the adaptation benchmark on a tiny setting."""
from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from benchmarks import adaptation
from metanerv import train
from metanerv.checkpoint import load_checkpoint
from metanerv.init_file import load_init, lr_scales, save_init
from metanerv.model import build_model

from tests.conftest import link_fixture_clips

CLIPS = ("bus_qcif_30f.264", "desk_320x240_36f.mp4")
TINY_ARGS = ["--tiny", "--sides", "32,48", "--frames", "4", "--frames-start", "2", "--batch", "3",
             "--inner-steps", "2", "--max-frames", "8", "--short-side", "64", "--quiet",
             "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return link_fixture_clips(tmp_path_factory.mktemp("clips"), CLIPS)


def _argv(clip_dir: Path, out: Path, *extra: str) -> list[str]:
    return [str(clip_dir), "--out", str(out), *TINY_ARGS, *extra]


def test_writes_a_loadable_init(clip_dir, tmp_path):
    out = tmp_path / "init.safetensors"
    assert train.main(_argv(clip_dir, out, "--steps", "2", "--algo", "maml", "--learn-lr")) == 0
    init = load_init(out)
    assert init.info["algorithm"] == "maml" and init.info["steps"] == 2
    assert set(init.info) >= {"command", "seconds", "machine", "data", "inner_lrs"}
    assert init.info["data"] == str(clip_dir.resolve())
    model = build_model(init.config, (3, 5), init.state)  # any grid size
    assert model(torch.tensor([0.0, 1.0])).shape == (2, 3, 48, 80)
    assert train.main(_argv(clip_dir, tmp_path / "x.safetensors")) == 1  # no budget


def test_metasgd_on_full_resolution_tasks_carries_step_sizes(clip_dir, tmp_path):
    out = tmp_path / "msgd.safetensors"
    assert train.main(_argv(clip_dir, out, "--steps", "2", "--algo", "metasgd", "--inner-lr", "0.01",
                            "--task-mix", "native:0.5,crop:0.5", "--crop-widths", "256,320",
                            "--gops", "8")) == 0
    init = load_init(out)
    assert init.info["algorithm"] == "metasgd" and init.info["inner"]["learned_lr"]
    assert init.info["task_mix"] == {"native": 0.5, "crop": 0.5}
    assert init.info["full_res_tasks"]["gops"] == [8]
    assert set(init.metasgd["log_lrs"]) == set(init.state) and init.metasgd["inner_opt"] == "sgd"
    assert init.metasgd["inner_steps"] == 2
    learned = {n: math.exp(v) for n, v in init.metasgd["log_lrs"].items()}
    assert learned == pytest.approx(init.info["inner_lrs"], rel=1e-6)
    assert any(v != pytest.approx(0.01) for v in learned.values())  # they were trained
    scales = lr_scales(init)
    assert "grid" in scales and not any(n.startswith("aux_heads.") for n in scales)
    # a plain Reptile init carries none
    plain = tmp_path / "plain.safetensors"
    assert train.main(_argv(clip_dir, plain, "--steps", "1")) == 0
    assert load_init(plain).metasgd is None


def test_bad_task_flags(clip_dir, tmp_path, capsys):
    out = tmp_path / "x.safetensors"
    with pytest.raises(SystemExit):
        train.build_parser().parse_args(_argv(clip_dir, out, "--task-mix", "held-out:1"))
    assert train.main(_argv(clip_dir, out, "--steps", "1", "--task-mix", "crop",
                            "--crop-widths", "260,270")) == 1  # no multiple of 16 in range
    assert "stride" in capsys.readouterr().err
    assert train.main(_argv(clip_dir, out, "--steps", "1", "--algo", "reptile", "--learn-lr")) == 1


def test_resume_continues_exactly(clip_dir, tmp_path):
    full = tmp_path / "full.safetensors"
    part = tmp_path / "part.safetensors"
    common = ("--algo", "fomaml", "--inner-opt", "adam", "--learn-lr", "--seed", "3")
    train.main(_argv(clip_dir, full, "--steps", "4", *common))
    train.main(_argv(clip_dir, part, "--steps", "4", "--stop-after", "2", *common))
    tensors, state = load_checkpoint(str(part) + ".ckpt")
    assert state["step"] == 2 and any(k.startswith("optim.") for k in tensors)
    train.main(_argv(clip_dir, part, "--steps", "4", "--resume", *common))
    a, b = load_init(full), load_init(part)
    assert b.info["steps"] == 4
    for k in a.state:
        assert torch.allclose(a.state[k], b.state[k], atol=1e-6), k
    assert not torch.equal(load_init(full).state["head.weight"],
                           build_model(a.config, (8, 8), seed=3).head.weight.detach())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, argv: list[str], dump: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    opts = train.build_parser().parse_args(argv)
    try:
        state = train.run(opts, argv)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    save_file({k: v.contiguous() for k, v in state.items()}, f"{dump}.{rank}.safetensors")


def test_two_processes_keep_identical_params(clip_dir, tmp_path):
    out = tmp_path / "dist.safetensors"
    argv = _argv(clip_dir, out, "--steps", "3", "--algo", "reptile")
    dump = str(tmp_path / "rank")
    mp.start_processes(_worker, args=(2, _free_port(), argv, dump), nprocs=2, join=True,
                       start_method="spawn")
    r0, r1 = load_file(f"{dump}.0.safetensors"), load_file(f"{dump}.1.safetensors")
    start = build_model(train.tiny_config(), (8, 8), seed=0).state_dict()
    assert any(not torch.equal(r0[k], start[k]) for k in r0)  # it trained
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    init = load_init(out)
    assert init.info["tasks"] == 6 and "2 process" in init.info["machine"]


def test_adaptation_benchmark_tiny(clip_dir, tmp_path):
    init = tmp_path / "tiny.safetensors"
    model = build_model(train.tiny_config(), (2, 2), seed=0)
    save_init(init, train.tiny_config(), model.state_dict(), {"note": "test"})
    js, png = tmp_path / "a.json", tmp_path / "a.png"
    rc = adaptation.main(["--downscaled", "--data", str(clip_dir), "--init", f"tiny={init}", "--init", "random=random",
                          "--steps", "0,2,4", "--frames", "3", "--batch", "2", "--max-side", "40",
                          "--threads", "1", "--jobs", "1", "--out-json", str(js), "--out-png", str(png),
                          "--quiet"])
    assert rc == 0 and png.stat().st_size > 1000
    res = json.loads(js.read_text())
    assert set(res["clips"]) == set(CLIPS) and res["steps"] == [0, 2, 4]
    for clip in res["clips"].values():
        assert max(clip["height"], clip["width"]) <= 40
        for curve in clip["psnr"].values():
            assert set(curve) == {"0", "2", "4"} and all(v > 0 for v in curve.values())
    assert set(res["summary"]["mean_psnr"]) == {"tiny", "random"}
    assert "first_step_reaching_random_final" in res["summary"]


def test_start_from_an_init_begins_at_its_tensors(clip_dir, tmp_path):
    """--start-from: zero outer steps give back the init's tensors (grid resampled to --grid);
    a model of another shape is refused."""
    first = tmp_path / "first.safetensors"
    assert train.main(_argv(clip_dir, first, "--steps", "1", "--grid", "4x4")) == 0
    warm = tmp_path / "warm.safetensors"
    assert train.main(_argv(clip_dir, warm, "--steps", "0", "--grid", "4x4",
                            "--start-from", str(first))) == 0
    a, b = load_init(first), load_init(warm)
    assert a.state.keys() == b.state.keys()
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert b.info["start_from"]["id"] == a.digest.hex()[:16]
    cold = tmp_path / "cold.safetensors"
    assert train.main(_argv(clip_dir, cold, "--steps", "0", "--grid", "4x4")) == 0
    assert not torch.equal(load_init(cold).state["head.weight"], a.state["head.weight"])
    full = tmp_path / "full.safetensors"  # the shipped (full-size) model's init
    assert train.main(_argv(clip_dir, full, "--steps", "0", "--start-from",
                            str(Path(train.__file__).parent / "inits" / "default.safetensors"))) == 1


def test_channels_pick_the_model_shape(clip_dir, tmp_path, capsys):
    """--channels trains another capacity class (a warm start must match it); bad widths and
    --channels with --tiny are refused with one message."""
    args = [a for a in TINY_ARGS if a != "--tiny"]
    narrow = tmp_path / "narrow.safetensors"
    argv = [str(clip_dir), "--out", str(narrow), *args, "--steps", "1", "--channels", "8,6,4,2",
            "--scale-weights", "0.1,0.2,0.3,0.4"]
    assert train.main(argv) == 0
    init = load_init(narrow)
    assert init.config.channels == (8, 6, 4, 2) and init.state["head.weight"].shape[1] == 2
    again = tmp_path / "again.safetensors"
    assert train.main([str(clip_dir), "--out", str(again), *args, "--steps", "0", "--channels", "8,6,4,2",
                       "--start-from", str(narrow)]) == 0
    assert torch.equal(load_init(again).state["head.weight"], init.state["head.weight"])
    assert train.main([str(clip_dir), "--out", str(again), *args, "--steps", "0", "--channels", "8,6,4,4",
                       "--start-from", str(narrow)]) == 1  # another shape
    capsys.readouterr()
    assert train.main(_argv(clip_dir, again, "--steps", "1", "--channels", "8,6,4")) == 1
    assert train.main([str(clip_dir), "--out", str(again), *args, "--steps", "1", "--channels", "8,6,4,0"]) == 1
    err = capsys.readouterr().err
    assert "--channels and --tiny" in err and "--channels wants 4 widths" in err


def test_resumed_init_records_its_first_session(clip_dir, tmp_path):
    """A warm-started run that is resumed still says where it started from and when (the
    resumed session's own flags have no --start-from)."""
    first = tmp_path / "first.safetensors"
    assert train.main(_argv(clip_dir, first, "--steps", "1")) == 0
    out = tmp_path / "warm.safetensors"
    assert train.main(_argv(clip_dir, out, "--steps", "3", "--stop-after", "1",
                            "--start-from", str(first))) == 0
    _, state = load_checkpoint(str(out) + ".ckpt")
    assert state["start_from"]["id"] == load_init(first).short_id
    assert train.main(_argv(clip_dir, out, "--steps", "3", "--resume")) == 0
    info = load_init(out).info
    assert info["steps"] == 3
    assert info["start_from"] == {"path": str(first), "id": load_init(first).short_id}
    assert info["started"] == state["started"]


def test_the_task_loss_can_be_the_encoders_balanced_mix(clip_dir, tmp_path, capsys):
    """--loss balanced: each task fits half L1 + SSIM, half the log-MSE term the encoder's
    default --tune uses; the init records it, a resume must use the same, and it trains other
    tensors than --loss ssim from the same seed."""
    from metanerv.losses import MSE_PRICE, reconstruction_loss, task_distortion
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g, requires_grad=True)
    y = torch.rand(2, 3, 16, 16, generator=g)
    mse = torch.nn.functional.mse_loss(x, y)
    bal = task_distortion(x, y, "balanced")
    assert bal.item() == pytest.approx(0.5 * MSE_PRICE + 0.5 * reconstruction_loss(x, y).item(), rel=1e-6)
    gb, = torch.autograd.grad(bal, x)
    gs, = torch.autograd.grad(reconstruction_loss(x, y), x)
    gm, = torch.autograd.grad(mse, x)
    assert torch.allclose(gb, 0.5 * MSE_PRICE * gm / mse.item() + 0.5 * gs, atol=1e-7)  # d ln MSE
    with pytest.raises(ValueError):
        task_distortion(x, y, "psnr")
    common = ("--steps", "3", "--seed", "4")
    bal_out, ssim_out = tmp_path / "bal.safetensors", tmp_path / "ssim.safetensors"
    assert train.main(_argv(clip_dir, bal_out, "--loss", "balanced", *common)) == 0
    assert train.main(_argv(clip_dir, ssim_out, *common)) == 0
    a, b = load_init(bal_out), load_init(ssim_out)
    assert a.info["loss"] == "balanced" and b.info["loss"] == "ssim"
    assert not torch.equal(a.state["head.weight"], b.state["head.weight"])
    part = tmp_path / "part.safetensors"
    assert train.main(_argv(clip_dir, part, "--loss", "balanced", "--steps", "3", "--stop-after", "1")) == 0
    capsys.readouterr()
    assert train.main(_argv(clip_dir, part, "--steps", "3", "--resume")) == 1  # --loss ssim now
    assert "--loss balanced" in capsys.readouterr().err


def test_coded_inner_loop_is_the_encoders_fit(clip_dir, tmp_path, capsys):
    """--inner-rate: the inner loop fits quantized residuals at a rate weight; a heavier weight
    stores fewer non-zero levels, every move is a whole number of its tensor's step, the run
    keeps the step sizes of the init it started from (and uses them), and bad flags are refused."""
    from metanerv import maml
    torch.manual_seed(0)
    model = build_model(train.tiny_config(), (2, 2))
    start = {k: v.detach() for k, v in model.named_parameters()}
    names = [n for n in start if not n.startswith("aux_heads.")]
    t = torch.tensor([0.0, 0.5])
    target = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def fn(params, k):
        return (torch.func.functional_call(model, params, (t,)) - target).square().mean()

    light = maml.coded_adapt(fn, start, names, 40, 2e-2, lam=0.0, pixels=2 * 32 * 32)
    heavy = maml.coded_adapt(fn, start, names, 40, 2e-2, lam=10.0, pixels=2 * 32 * 32)
    nonzero = lambda moves: sum(int((m != 0).sum()) for m in moves.values())
    assert set(light) == set(names) and nonzero(light) > 4 * nonzero(heavy)
    apply = lambda moves: {k: start[k] + moves[k] if k in moves else start[k] for k in start}
    assert fn(apply(light), 0) < 0.8 * fn(start, 0)  # it fits
    for k, move in light.items():  # every move is a whole number of one step per tensor
        ratio = move[move != 0] / move[move != 0].abs().min()  # the smallest may be 2 or 3 steps
        assert any(torch.allclose(ratio * d, (ratio * d).round(), atol=1e-3) for d in (1, 2, 3, 4, 5)), k
    # meta-training with it, from an init that carries step sizes
    first = tmp_path / "first.safetensors"
    assert train.main(_argv(clip_dir, first, "--steps", "2", "--algo", "metasgd")) == 0
    for algo in ("reptile", "fomaml"):
        out = tmp_path / f"coded_{algo}.safetensors"
        assert train.main(_argv(clip_dir, out, "--steps", "2", "--algo", algo, "--inner-rate", "0.1,2",
                                "--start-from", str(first))) == 0
        init = load_init(out)
        assert init.info["inner_rate"] == {"lam": [0.1, 2.0], "per": "coded pixel", "rate_frames": 60,
                                           "step_sizes": True}
        assert init.metasgd["log_lrs"] == load_init(first).metasgd["log_lrs"]
        assert not torch.equal(init.state["head.weight"], load_init(first).state["head.weight"])
    part = tmp_path / "part.safetensors"  # a resume keeps the run's --inner-rate
    assert train.main(_argv(clip_dir, part, "--steps", "2", "--stop-after", "1", "--inner-rate", "0.1,2")) == 0
    capsys.readouterr()
    assert train.main(_argv(clip_dir, part, "--steps", "2", "--resume")) == 1
    assert "--inner-rate 0.1,2.0" in capsys.readouterr().err
    assert train.main(_argv(clip_dir, part, "--steps", "2", "--resume", "--inner-rate", "0.1,2")) == 0
    for bad in (("--inner-rate", "2,1"), ("--inner-rate", "0,1"), ("--inner-rate", "0.1,1", "--algo", "maml"),
                ("--inner-rate", "0.1,1", "--rate-frames", "0")):
        assert train.main(_argv(clip_dir, tmp_path / "bad.safetensors", "--steps", "1", *bad)) == 1
        assert "--inner-rate" in capsys.readouterr().err or bad[-2] == "--rate-frames"
