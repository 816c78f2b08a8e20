"""The conformance streams, both decoders judged by them, and a checker that bites.

The reference decoder (bitstreams/refdecoder.py, numpy, written from SPEC.md) and the codec's
decoder (torch) must both pass every stream; they must agree on the weights bit for bit and on
the frames within one 8-bit step, on the conformance streams and on a fresh encode.
"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from bitstreams import conform, refdecoder
from codec import conformance
from nervcore.errors import NervcError

REPO = Path(__file__).resolve().parents[1]
VALID = [s.name for s in conformance.STREAMS] + list(conformance.CRAFTED) + list(conformance.LEGACY)


def test_stream_set_is_complete():
    names = {p.stem for p in conform.HERE.glob("*.nerv")}
    assert names == set(VALID) | set(conformance.INVALID)
    for name in VALID:
        assert (conform.HERE / f"{name}.rgb").is_file()
    for name, (_, _, reason) in conformance.INVALID.items():
        assert json.loads((conform.HERE / f"{name}.json").read_text())["reason"] == reason


def test_reference_decoder_passes_every_stream(capsys):
    assert conform.main(["check"]) == 0
    out = capsys.readouterr().out
    n = len(VALID) + len(conformance.INVALID)
    assert f"{n}/{n} conformance streams pass" in out
    assert "reference decoder" in out


def test_codec_decoder_passes_every_stream(capsys, one_thread):
    assert conformance.main(["check"]) == 0
    out = capsys.readouterr().out
    n = len(VALID) + len(conformance.INVALID)
    assert f"{n}/{n} conformance streams pass" in out
    assert "codec.decoder" in out
    assert out.count("weights exact") == len(VALID)


# ------------------------------------------------------------------ the checker bites

@pytest.fixture
def stream(tmp_path):
    """A private copy of one small valid stream and one invalid stream."""
    for name in ("delta_lam_huge_1fps", "bad_section_crc"):
        for p in conform.HERE.glob(f"{name}.*"):
            shutil.copy(p, tmp_path / p.name)
    return tmp_path


def _wrap(**override) -> conform.FunctionDecoder:
    ref = conform.ReferenceDecoder()
    d = dict(name="wrapped", info=ref.info, weights=ref.weights, frames=ref.frames)
    d.update(override)
    return conform.FunctionDecoder(**d)


def test_checker_passes_the_reference_and_tolerates_one_step(stream):
    j = stream / "delta_lam_huge_1fps.json"
    v = conform.check_stream(j)
    assert v.ok and v.frames_sha_match and v.max_diff == 0 and "weights exact" in v.detail

    def off_by_one(path):
        f = conform.ReferenceDecoder().frames(path).copy()
        f[0, 0, 0, 0] = f[0, 0, 0, 0] + 1 if f[0, 0, 0, 0] < 255 else 254
        return f
    v = conform.check_stream(j, _wrap(frames=off_by_one))
    assert v.ok and v.max_diff == 1 and v.frames_sha_match is False
    assert "frames_sha256 differs" in v.detail


def test_checker_rejects_wrong_frames(stream):
    j = stream / "delta_lam_huge_1fps.json"

    def off_by_three(path):
        f = conform.ReferenceDecoder().frames(path).copy()
        f.reshape(-1)[123] = (int(f.reshape(-1)[123]) + 3) % 256
        return f
    v = conform.check_stream(j, _wrap(frames=off_by_three))
    assert not v.ok and "frames differ" in v.detail and v.max_diff == 3

    v = conform.check_stream(j, _wrap(frames=lambda p: conform.ReferenceDecoder().frames(p)[:, :-1]))
    assert not v.ok and "expected uint8" in v.detail

    rgb = stream / "delta_lam_huge_1fps.rgb"  # the reference frames themselves tampered with
    data = bytearray(rgb.read_bytes())
    data[7] ^= 1
    rgb.write_bytes(bytes(data))
    v = conform.check_stream(j)
    assert not v.ok and "does not match frames_sha256" in v.detail


def test_checker_rejects_wrong_weights(stream):
    j = stream / "delta_lam_huge_1fps.json"

    def one_ulp_off(path, gop):
        w = conform.ReferenceDecoder().weights(path, gop)
        w["head.bias"] = np.nextafter(w["head.bias"], np.float32(np.inf)).astype(np.float32)
        return w
    v = conform.check_stream(j, _wrap(weights=one_ulp_off))
    assert not v.ok and "weights differ in GOP 0 (tensors head.bias)" in v.detail

    def missing(path, gop):
        w = conform.ReferenceDecoder().weights(path, gop)
        del w["grid"]
        return w
    v = conform.check_stream(j, _wrap(weights=missing))
    assert not v.ok and "grid" in v.detail


def test_checker_rejects_wrong_header_init_id_and_records(stream):
    j = stream / "delta_lam_huge_1fps.json"
    ref = conform.ReferenceDecoder()

    def changed(**kw):
        def info(path):
            d = ref.info(path)
            for k, f in kw.items():
                d[k] = f(d[k])
            return d
        return _wrap(info=info)

    v = conform.check_stream(j, changed(fps=lambda fps: [fps[0] + 1, fps[1]]))
    assert not v.ok and "header field fps" in v.detail
    v = conform.check_stream(j, changed(model=lambda m: {**m, "pe_base": 1.5}))
    assert not v.ok and "header field model" in v.detail
    v = conform.check_stream(j, changed(init_id=lambda i: "0" * 32))
    assert not v.ok and "init id" in v.detail

    def bump_k(recs):
        recs[0][3] = [recs[0][3][0], recs[0][3][1] + 1, recs[0][3][2]]
        return recs
    v = conform.check_stream(j, changed(records=bump_k))
    assert not v.ok and "GOP 0: 1 tensor records differ, first #3" in v.detail

    v = conform.check_stream(j, _wrap(info=lambda p: (_ for _ in ()).throw(NervcError("nope"))))
    assert not v.ok and "refused a valid stream: nope" in v.detail


def test_checker_rejects_wrong_reason_and_accepted_garbage(stream):
    bad = stream / "bad_section_crc.json"
    assert conform.check_stream(bad).ok

    def wrong_reason(path):
        raise NervcError(f"{path}: header CRC mismatch")
    v = conform.check_stream(bad, _wrap(frames=wrong_reason))
    assert not v.ok and "wrong reason" in v.detail

    v = conform.check_stream(bad, _wrap(frames=lambda p: np.zeros((1, 1, 1, 3), np.uint8)))
    assert not v.ok and "decoded, but it is invalid" in v.detail

    def crash(path):
        raise IndexError("list index out of range")
    v = conform.check_stream(bad, _wrap(frames=crash))
    assert not v.ok and "IndexError" in v.detail

    spec = json.loads((stream / "delta_lam_huge_1fps.json").read_text())
    spec.update(valid=False, reason="anything")  # a valid stream labelled invalid
    (stream / "delta_lam_huge_1fps.json").write_text(json.dumps(spec))
    v = conform.check_stream(stream / "delta_lam_huge_1fps.json")
    assert not v.ok and "decoded, but" in v.detail


def test_checker_rejects_a_changed_stream_file(stream):
    p = stream / "delta_lam_huge_1fps.nerv"
    p.write_bytes(p.read_bytes() + b"\0")
    v = conform.check_stream(stream / "delta_lam_huge_1fps.json")
    assert not v.ok and "file_sha256" in v.detail


def test_third_party_decoder_from_the_command_line(capsys):
    assert conform.main(["check", "--decoder", "bitstreams.conform:ReferenceDecoder"]) == 0
    assert conform.main(["check", "--decoder", "bitstreams.conform:nothing"]) == 1
    assert "nothing" in capsys.readouterr().err


# ------------------------------------------------------------------ the two decoders agree

def _compare_decoders(path: Path, inits=None) -> tuple[int, bool]:
    """(max |frame diff|, every GOP's weights bit-identical) between the two decoders."""
    from codec.decoder import decode

    ours, ref = conformance.CodecDecoder("cpu", inits), conform.ReferenceDecoder(inits)
    a = decode(path, device="cpu", init=inits).frames
    b = refdecoder.decode(path, inits)
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    exact = True
    for g in range(refdecoder.read(path).header.num_gops):
        wa, wb = ours.weights(path, g), ref.weights(path, g)
        assert list(wa) == list(wb)
        exact &= all(np.array_equal(wa[k].view(np.uint32), wb[k].view(np.uint32)) for k in wa)
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()), exact


@pytest.mark.parametrize("name", VALID)
def test_reference_decoder_matches_codec_decode(name, one_thread):
    diff, exact = _compare_decoders(conform.HERE / f"{name}.nerv")
    assert exact, f"{name}: weights differ between the decoders"
    assert diff <= 1, f"{name}: frames differ by {diff}"


def test_reference_decoder_matches_codec_on_a_fresh_random_clip(tmp_path, one_thread):
    from codec import encode
    from nervcore.video_io import Video

    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (5, 27, 42, 3), dtype=np.uint8)  # odd size: grid 2x3
    frames[:, :, :21] //= 2  # some structure
    path = tmp_path / "random.nerv"
    encode(Video(frames, Fraction(24000, 1001)), path, quality=8, steps=8, init="default", gop=3,
           lam=0.05, progress=False, overwrite=True)
    diff, exact = _compare_decoders(path)
    assert exact and diff <= 1


def test_frequency_tables_and_grid_resize_agree_bit_for_bit():
    """The two integer/IEEE parts of weight reconstruction, on inputs beyond the streams'."""
    import torch

    from codec.entropy import laplace_counts
    from metanerv.model import resize_grid

    for K in (1, 2, 3, 100, 32767):
        for R in (0, 1, 2625, 32768, 65534, 65535):
            assert np.array_equal(refdecoder.laplace_counts(K, R), laplace_counts(R, K)), (K, R)
    rng = np.random.default_rng(3)
    for _ in range(40):
        h, w, oh, ow = (int(v) for v in rng.integers(1, 40, 4))
        g = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        ours = resize_grid(torch.from_numpy(g), (oh, ow)).numpy()
        assert np.array_equal(ours.view(np.uint32), refdecoder.resize_bilinear(g, oh, ow).view(np.uint32))


def test_refdecoder_cli_writes_raw_rgb(tmp_path, capsys):
    out = tmp_path / "out.rgb"
    assert refdecoder.main([str(conform.HERE / "absolute_odd_3gop.nerv"), str(out)]) == 0
    assert out.read_bytes() == (conform.HERE / "absolute_odd_3gop.rgb").read_bytes()
    assert refdecoder.main([str(conform.HERE / "bad_truncated.nerv"), str(tmp_path / "x.rgb")]) == 1
    assert "truncated" in capsys.readouterr().err and not (tmp_path / "x.rgb").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_refdecoder_refuses_a_missing_init_naming_it(tmp_path):
    path = tmp_path / "s.nerv"
    data = bytearray((conform.HERE / "delta_all_zero.nerv").read_bytes())
    data[32:48] = bytes(range(1, 17))  # another init id, CRC fixed so only the init is unknown
    import zlib
    hlen = int.from_bytes(data[6:8], "little")
    data[hlen:hlen + 4] = zlib.crc32(bytes(data[:hlen])).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(NervcError, match="0102030405060708"):
        refdecoder.decode(path)


# ------------------------------------------------------------------ layering

def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
    return mods


def test_bitstreams_imports_nothing_from_codec():
    """Imports go one way: the format (bitstreams/) and the model and meta-learning (metanerv/,
    which now holds the rate model the encoder and the coded inner loop share) never import the
    encoder, decoder or CLI (codec/)."""
    for p in [*(REPO / "bitstreams").glob("*.py"), *(REPO / "metanerv").glob("*.py")]:
        assert not {m for m in _imports(p) if m.split(".")[0] == "codec"}, p
    ref = _imports(REPO / "bitstreams" / "refdecoder.py")
    assert not {m for m in ref if m.split(".")[0] in ("torch", "metanerv", "codec")}
    assert "bitstreams.format" not in ref and "bitstreams" not in ref


def test_reference_decoder_runs_without_torch():
    code = ("import sys; from bitstreams import refdecoder, conform; "
            "refdecoder.decode(sys.argv[1]); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'codec', 'metanerv')] "
            "+ [m for m in sys.modules if m == 'bitstreams.format']; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code, str(conform.HERE / "delta_q6.nerv")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
