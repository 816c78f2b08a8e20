"""Delta coding against an init (bitstream v2): the decoder rebuilds exactly the encoder's
quantized weights, untouched entries (level 0) keep the init's value, and coding from the init
costs fewer bytes than coding the same fit's weights absolutely."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import codec
from bitstreams import BitstreamReader
from codec.cli import main
from codec.decoder import reconstruct_weights
from metanerv.init_file import load_init, save_init
from metanerv.model import NeRVConfig, build_model, init_state_for
from nervcore.video_io import Video, read_video
from tests.conftest import DATA


@pytest.fixture(scope="module")
def init_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("init") / "tiny.safetensors"
    save_init(path, NeRVConfig(), build_model(NeRVConfig(), (3, 4), seed=7).state_dict(), {"why": "test"})
    return path


@pytest.fixture(scope="module")
def clip():
    v = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 6))
    return Video(np.ascontiguousarray(v.frames[:, :64, :80]), v.fps)  # small: fits in seconds


def test_unchanged_init_codes_to_nothing_and_decodes_to_the_init(tmp_path, init_path, clip):
    out = tmp_path / "d.nerv"
    codec.encode(clip, out, steps=0, init=str(init_path), progress=False)
    reader = BitstreamReader(out)
    gop = reader.read_gop(0)
    init = init_state_for(load_init(init_path).state, reader.header.grid_hw)
    assert all(t.K == 0 for t in gop.tensors) and len(gop.words) == 1  # residual 0: the end marker alone
    weights = reconstruct_weights(reader, gop, init)
    assert all(torch.equal(weights[k], init[k]) for k in weights)
    assert load_init(init_path).digest.startswith(reader.header.init_digest)


def test_delta_stream_needs_its_init(tmp_path, init_path, clip, capsys):
    out = tmp_path / "n.nerv"
    codec.encode(clip, out, steps=3, init=str(init_path), progress=False)
    assert main(["decode", str(out), str(tmp_path / "n.mkv"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert load_init(init_path).digest.hex()[:16] in err and not (tmp_path / "n.mkv").exists()
    assert main(["decode", str(out), str(tmp_path / "n.mkv"), "--quiet", "--init", str(init_path)]) == 0


def _fit(clip, init, lam, base=None, steps=6):
    """The encoder's own fit of ``clip`` (CodedGop) and the base it is relative to."""
    from codec.finetune import FitSettings, fit_gop, frames_to_tensor
    from metanerv.model import grid_size_for, pad_to_stride
    cfg = init.config if init else NeRVConfig()
    ghw = grid_size_for(clip.height, clip.width, cfg)
    base = init_state_for(init.state, ghw) if init else None
    model = build_model(cfg, ghw, init.state if init else None, seed=0)
    frames = pad_to_stride(frames_to_tensor(clip.frames), cfg.total_stride)
    pixels = clip.num_frames * clip.width * clip.height
    return fit_gop(model, frames, base, FitSettings(steps=steps, lr=2e-2, batch=8, lam=lam), pixels, progress=False), base, ghw


@pytest.mark.parametrize("use_init", [True, False], ids=["delta", "absolute"])
def test_decoder_rebuilds_exactly_the_encoders_quantized_weights(tmp_path, init_path, clip, use_init):
    from bitstreams import Header, write_bitstream
    from codec.gopcode import gop_record
    init = load_init(init_path) if use_init else None
    coded, base, ghw = _fit(clip, init, lam=0.5)
    record, _ = gop_record(coded, 0, clip.num_frames)
    header = Header(clip.width, clip.height, clip.num_frames, clip.fps, clip.num_frames, 1,
                    init.config if init else NeRVConfig(), init.digest if init else bytes(16))
    write_bitstream(tmp_path / "w.nerv", header, [record])
    reader = BitstreamReader(tmp_path / "w.nerv")
    got = reconstruct_weights(reader, reader.read_gop(0), base)
    want = coded.weights(base)
    assert list(got) == coded.names
    for k, lv in zip(coded.names, coded.levels):
        assert torch.equal(got[k], want[k]), k
        zero = torch.from_numpy(lv == 0)
        expect = base[k][zero] if use_init else torch.zeros(int(zero.sum()))
        assert torch.equal(got[k][zero], expect), k  # level 0: the init's value, or exactly 0


def test_delta_from_the_init_costs_fewer_bytes_than_absolute(tmp_path, clip):
    """The same fit (from the shipped init) written both ways: coding the residual against the
    init must be cheaper than coding the weights themselves at the same steps."""
    from bitstreams import Header, write_bitstream
    from codec.gopcode import gop_record
    from codec.finetune import CodedGop
    from metanerv.init_file import DEFAULT_INIT
    init = load_init(DEFAULT_INIT)
    coded, base, ghw = _fit(clip, init, lam=0.5, steps=10)
    delta, _ = gop_record(coded, 0, clip.num_frames)
    weights = coded.weights(base)
    absolute = CodedGop(coded.names, coded.steps,
                        [torch.round(weights[k] / float(s)).to(torch.int64).numpy()
                         for k, s in zip(coded.names, coded.steps)])
    absolute_rec, _ = gop_record(absolute, 0, clip.num_frames)
    h = Header(clip.width, clip.height, clip.num_frames, clip.fps, clip.num_frames, 1, init.config)
    n_delta = write_bitstream(tmp_path / "d.nerv", h, [delta])
    n_abs = write_bitstream(tmp_path / "a.nerv", h, [absolute_rec])
    assert n_delta < 0.5 * n_abs
