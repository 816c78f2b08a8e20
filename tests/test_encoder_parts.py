"""The encoder in its parts (codec/options, plan, gopfit, rate_control, gopcode, parallel, writer):
files of one job and at most 400 lines, imports one way, one options object, the decoder's
config known without parsing the encoder's own header."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from fractions import Fraction

from bitstreams import Header
from bitstreams.format import decode_header, encode_header
from codec.encoder import encode_ladder
from codec.inits import random_init_config
from codec.options import EncodeOptions
from metanerv.init_file import DEFAULT_INIT, load_init
from nervcore.errors import NervcError
from nervcore.video_io import Video

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("codec", "bitstreams", "metanerv", "nervcore")  # each imports only those after it


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            mods.add(node.module.split(".")[0])
    return mods


def test_imports_run_codec_bitstreams_metanerv_nervcore_never_back_up():
    for i, layer in enumerate(LAYERS):
        above = set(LAYERS[:i])
        for p in (REPO / layer).glob("*.py"):
            assert not _imports(p) & above, (p, _imports(p) & above)


def test_no_codec_file_over_400_lines():
    long = {p.name: n for p in (REPO / "codec").glob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


@pytest.mark.parametrize("config", [load_init(DEFAULT_INIT).config, random_init_config()], ids=["default", "random"])
def test_the_decoder_reads_the_config_the_encoder_fits(config):
    h = Header(176, 144, 16, Fraction(30), 8, 2, config, bytes(16), (110, 90))
    assert decode_header(encode_header(h))[0].config == config


def test_one_options_object_or_its_fields(tmp_path):
    rng = np.random.default_rng(0)
    video = Video(rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), Fraction(25))
    opts = EncodeOptions(steps=2, batch=1, init="random", progress=False, device="cpu")
    a = encode_ladder(video, {4: tmp_path / "a.nerv"}, opts)[4]
    b = encode_ladder(video, {4: tmp_path / "b.nerv"}, steps=2, batch=1, init="random", progress=False, device="cpu")[4]
    assert (tmp_path / "a.nerv").read_bytes() == (tmp_path / "b.nerv").read_bytes()
    assert a.predicted_seconds is None and a.fitted_as is None  # --steps given: no prediction, no floor
    with pytest.raises(NervcError, match="--jobs 0: must be at least 1"):
        EncodeOptions(jobs=0).check([4])
    with pytest.raises(NervcError, match="--bpp sets one rate"):
        EncodeOptions(bpp=0.1).check([3, 4])
    with pytest.raises(TypeError):
        encode_ladder(video, {4: tmp_path / "c.nerv"}, stepz=2)
