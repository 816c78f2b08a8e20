"""The decoder's fast CPU path (``NeRV.render``) computes the same frames as ``forward``."""
import pytest
import torch

from metanerv.model import NeRV, NeRVConfig, build_model, frame_times, grid_size_for
from metanerv.init_file import DEFAULT_INIT, load_init


@pytest.mark.parametrize("config,hw", [
    (NeRVConfig(), (288, 352)),
    (NeRVConfig(channels=(8, 6), strides=(3, 2), grid_anchors=1, embed_dim=16), (30, 42)),
    (NeRVConfig(channels=(10, 7, 5), strides=(2, 1, 2), grid_anchors=3), (19, 23)),
])
def test_render_is_forward(config, hw):
    model = build_model(config, grid_size_for(*hw, config), seed=3)
    with torch.no_grad():  # FiLM is zero at random init: give it weight so the fold is tested
        for block in model.blocks:
            block.film.weight.normal_(0, 0.3)
            block.film.bias.normal_(0, 0.3)
    t = frame_times(list(range(5)), 5)
    with torch.no_grad():
        want = model(t)
    got = model.render(t)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-5
    assert not torch.equal(got[0], got[-1])  # frames differ: FiLM and the grid follow t


def test_render_with_the_shipped_init_matches_to_the_eighth_bit():
    init = load_init(DEFAULT_INIT)
    model = build_model(init.config, grid_size_for(144, 176, init.config), init.state)
    t = frame_times([0, 3, 7], 8)
    with torch.no_grad():
        want = model(t)
    got = model.render(t)
    assert (got - want).abs().max().item() < 1e-5
    # as the decoder rounds to 8 bits: at most a rare one-level flip
    diff = (got * 255).round() - (want * 255).round()
    assert diff.abs().max().item() <= 1 and (diff != 0).float().mean().item() < 1e-3


def test_the_decoders_worker_threads_give_the_serial_frames():
    from codec.decoder import render
    init = load_init(DEFAULT_INIT)
    model = build_model(init.config, grid_size_for(40, 56, init.config), init.state).eval()
    idx = [0, 2, 3, 5, 6, 7, 8, 9, 11]  # more than a batch, an odd count
    serial = render(model, idx, 12, 40, 56, torch.device("cpu"), batch=4, workers=1)
    threaded = render(model, idx, 12, 40, 56, torch.device("cpu"), batch=4, workers=2)
    assert serial.shape == (9, 40, 56, 3) and serial.dtype.name == "uint8"
    assert (serial == threaded).all()
    assert len({serial[i].tobytes() for i in range(9)}) == 9


def test_the_decoders_worker_threads_leave_the_callers_thread_count():
    from codec.decoder import render
    init = load_init(DEFAULT_INIT)
    model = build_model(init.config, grid_size_for(16, 16, init.config), init.state).eval()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        render(model, [0, 1, 2], 3, 16, 16, torch.device("cpu"), batch=2, workers=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cpu_frames_do_not_depend_on_the_batch():
    """One frame per network call on the CPU: a decode's pixels do not depend on --batch (the
    network's float sums do depend on how many frames a call holds)."""
    from codec.decoder import render
    init = load_init(DEFAULT_INIT)
    model = build_model(init.config, grid_size_for(40, 56, init.config), init.state).eval()
    idx = [0, 2, 3, 5, 6, 7, 8, 9, 11]
    ref = render(model, idx, 12, 40, 56, torch.device("cpu"), batch=4, workers=1)
    for batch in (1, 2, 3, 8):
        assert (render(model, idx, 12, 40, 56, torch.device("cpu"), batch=batch, workers=1) == ref).all(), batch
