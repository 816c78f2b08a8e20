"""Streaming encode: GOP by GOP in bounded memory, the same bytes serially, with --jobs and
across torch.distributed ranks, and a reported PSNR equal to that of the decoded file."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import codec
from bitstreams import BitstreamReader, BitstreamWriter, GopRecord, Header, TensorRecord, write_bitstream
from bitstreams.format import param_shapes
from codec import cli
from codec.encoder import encode_ladder
from codec.gopcode import CodedRung
from codec.metrics import rgb_psnr
from codec.parallel import pack_gop, unpack_gop
from metanerv.model import NeRVConfig
from nervcore.errors import NervcError
from nervcore.video_io import Video, VideoSource, read_video, write_video
from tests.conftest import DATA, REPO

BUS = DATA / "fixtures" / "bus_qcif_30f.264"
GOP, STEPS, FRAMES = 2, 2, 7  # four GOPs, the last one short


# ---------------------------------------------------------------- BitstreamWriter

def _records(config: NeRVConfig, grid_hw, frames: int, gop: int, seed: int = 0) -> list[GopRecord]:
    rng = np.random.default_rng(seed)
    n_tensors = len(param_shapes(config, grid_hw))
    out = []
    for first in range(0, frames, gop):
        tensors = [TensorRecord(np.float16(rng.uniform(0.001, 0.1)), int(k), int(rng.integers(1, 60000)) if k else 0)
                   for k in rng.integers(0, 5, n_tensors)]
        out.append(GopRecord(first, min(gop, frames - first), tensors,
                             rng.integers(0, 2**32, int(rng.integers(1, 50)), dtype=np.uint32)))
    return out


def test_writer_matches_write_bitstream_and_patches_header(tmp_path):
    config = NeRVConfig()
    header = Header(176, 144, 9, Fraction(25), 4, 3, config, b"\x07" * 16)
    gops = _records(config, header.grid_hw, 9, 4)
    ref = tmp_path / "ref.nerv"
    size = write_bitstream(ref, header, gops)

    with BitstreamWriter(tmp_path / "w.nerv", header) as w:
        for g in gops:
            w.add_gop(g)
        assert not (tmp_path / "w.nerv").exists()  # nothing visible before commit
        assert w.commit() == size
    assert (tmp_path / "w.nerv").read_bytes() == ref.read_bytes()

    # a source of unknown length: provisional counts, rewritten when the last GOP is in
    provisional = Header(176, 144, 4, Fraction(25), 4, 1, config, b"\x07" * 16)
    with BitstreamWriter(tmp_path / "p.nerv", provisional) as w:
        for g in gops:
            w.add_gop(g)
        w.finish(header)
        w.commit()
    assert (tmp_path / "p.nerv").read_bytes() == ref.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.nerv", "ref.nerv", "w.nerv"]  # no temporaries


def test_writer_leaves_nothing_on_failure(tmp_path):
    config = NeRVConfig()
    header = Header(176, 144, 9, Fraction(25), 4, 3, config)
    gops = _records(config, header.grid_hw, 9, 4)
    old = tmp_path / "old.nerv"
    old.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with BitstreamWriter(old, header) as w:
            w.add_gop(gops[0])
            raise RuntimeError("interrupted")
    with BitstreamWriter(old, header) as w:  # leaving without commit: not wanted either
        w.add_gop(gops[0])
    with pytest.raises(NervcError, match="2 GOP sections written, the header declares 3"):
        with BitstreamWriter(old, header) as w:
            w.add_gop(gops[0])
            w.add_gop(gops[1])
            w.commit()
    from bitstreams.format import encode_gop
    section = bytearray(encode_gop(gops[0], 0))
    section[-1] ^= 1
    with pytest.raises(NervcError, match="damaged GOP section"):
        with BitstreamWriter(old, header) as w:
            w.add_section(bytes(section))
    assert old.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["old.nerv"]


# ---------------------------------------------------------------- streaming encode

@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 32x32, 7-frame lossless source (four GOPs of 2) and its frames."""
    d = tmp_path_factory.mktemp("stream")
    v = read_video(BUS, frames=slice(0, FRAMES))
    frames = np.ascontiguousarray(v.frames[:, 40:72, 60:92])
    write_video(d / "src.mkv", frames, v.fps, 32, 32)
    return d / "src.mkv", frames


@pytest.fixture(scope="module")
def serial(clip) -> dict[int, codec.EncodeResult]:
    """The serial encode of ``clip`` at two rungs (a shared fit prefix): the reference bytes."""
    src, _ = clip
    return encode_ladder(src, {3: src.with_name("s3.nerv"), 6: src.with_name("s6.nerv")},
                         steps=STEPS, gop=GOP, progress=False)


def test_streamed_psnr_is_the_decoded_files(serial, clip):
    """The PSNR measured GOP by GOP is exactly rgb_psnr of the whole decoded file."""
    _, frames = clip
    for q, r in serial.items():
        decoded = codec.decode(r.path, device="cpu").frames
        assert r.psnr == rgb_psnr(decoded, frames), q
        assert r.num_bytes == os.path.getsize(r.path) and r.num_frames == FRAMES
        assert len(BitstreamReader(r.path).sections) == 4
    # two rungs, two fits (at 2 steps their sizes may tie; their bytes do not)
    assert Path(serial[3].path).read_bytes() != Path(serial[6].path).read_bytes()


class _UnknownLength(VideoSource):
    """A source (think of a pipe) that cannot say how many frames it holds until the end."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames, self.path, self.fps = frames, "<pipe>", Fraction(25)
        self.height, self.width = frames.shape[1:3]
        self.num_frames = None

    def chunks(self, n):
        for i in range(0, len(self.frames), n):
            yield self.frames[i:i + n].copy()


def test_unknown_length_source_and_video_give_the_same_bytes(serial, clip, tmp_path):
    _, frames = clip
    ref = Path(serial[6].path).read_bytes()
    r = encode_ladder(_UnknownLength(frames), {6: tmp_path / "u.nerv"}, steps=STEPS, gop=GOP,
                      progress=False)[6]
    assert (tmp_path / "u.nerv").read_bytes() == ref and r.psnr == serial[6].psnr
    r = encode_ladder(Video(frames, Fraction(25)), {6: tmp_path / "v.nerv"}, steps=STEPS, gop=GOP,
                      progress=False)[6]
    assert (tmp_path / "v.nerv").read_bytes() == ref


def test_jobs_give_the_serial_bytes(serial, clip, tmp_path):
    """Two worker processes fit the four GOPs: the same files, PSNR and estimates."""
    src, _ = clip
    res = encode_ladder(src, {3: tmp_path / "j3.nerv", 6: tmp_path / "j6.nerv"}, steps=STEPS, gop=GOP,
                        progress=False, jobs=2)
    for q, r in res.items():
        assert Path(r.path).read_bytes() == Path(serial[q].path).read_bytes(), q
        assert (r.psnr, r.estimated_bytes, r.lam) == (serial[q].psnr, serial[q].estimated_bytes, serial[q].lam)


class _BreaksAfter(_UnknownLength):
    """A source whose third chunk cannot be decoded."""

    def chunks(self, n):
        for i, c in enumerate(super().chunks(n)):
            if i == 2:
                raise NervcError("<pipe>: cannot decode video (damaged)")
            yield c


def test_jobs_failure_leaves_nothing(clip, tmp_path):
    """A source that fails mid-way: the error, no output, no temporary, workers stopped."""
    _, frames = clip
    out = tmp_path / "f.nerv"
    with pytest.raises(NervcError, match="damaged"):
        encode_ladder(_BreaksAfter(frames), {6: out}, steps=STEPS, gop=GOP, progress=False, jobs=2)
    assert list(tmp_path.iterdir()) == []
    import multiprocessing
    assert multiprocessing.active_children() == []


def test_torchrun_two_ranks_give_the_serial_bytes(serial, clip, tmp_path):
    """``torchrun --nproc-per-node 2 -m codec encode ... --distributed``: two CPU ranks (gloo),
    rank 0 gathers the GOP sections and writes the file that the serial encode wrote."""
    src, _ = clip
    out = tmp_path / "d.nerv"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "codec", "encode", str(src), str(out), "-q", "6", "--steps", str(STEPS), "--gop", str(GOP),
           "--quiet", "--distributed"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert out.read_bytes() == Path(serial[6].path).read_bytes()
    assert p.stdout.count("PSNR") == 1 and f"PSNR {serial[6].psnr:.2f} dB" in p.stdout  # rank 0 reports


def test_rank_messages_round_trip_and_reject_damage():
    rungs = {3: CodedRung(b"\x01abc", 7, 123.5, 0.25, np.array([1.5, 2.5]), 2),
             6: CodedRung(b"", 0, 0.0, 3.0, np.array([0.0, 9.0]))}
    data = pack_gop(5, 2, rungs)
    back = unpack_gop(data, 5, 2, [3, 6], "rank 1")
    for q in rungs:
        a, b = back[q], rungs[q]
        assert (a.section, a.words, a.bits, a.lam, a.rollbacks) == (b.section, b.words, b.bits, b.lam, b.rollbacks)
        assert np.array_equal(a.mse, b.mse)
    for bad, gi in ((data, 4), (data[:-1], 5), (data + b"\0", 5)):
        with pytest.raises(NervcError, match="rank 1 sent a malformed GOP"):
            unpack_gop(bad, gi, 2, [3, 6], "rank 1")


def test_cli_rejects_bad_parallel_options(clip, tmp_path, monkeypatch, capsys):
    src, _ = clip
    out = tmp_path / "x.nerv"
    assert cli.main(["encode", str(src), str(out), "--jobs", "0"]) == 1
    assert "--jobs 0: must be at least 1" in capsys.readouterr().err
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    assert cli.main(["encode", str(src), str(out), "--distributed"]) == 1
    assert "start the encode with torchrun" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["encode", str(src), str(out)]) == 1
    assert "add --distributed" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- bounded memory

# Run in a fresh process: warm up (one short encode of the same shape, so torch's lazy
# initialisation and the allocator's pools are in place), then cap the address space
# (RLIMIT_AS) at the peak it reached plus MARGIN, which is smaller than the clip decoded. The
# streaming encode of the whole clip must finish under the cap; reading the clip whole, as the
# encoder used to, must not. One malloc arena and a fixed mmap threshold keep glibc from
# reserving address space per thread or by chance, so the measure is the program's own.
CHILD = textwrap.dedent("""
    import resource, sys
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(1)
    from codec.encoder import encode_ladder
    from metanerv.init_file import InitFile, init_digest
    from metanerv.model import NeRV, NeRVConfig
    from nervcore.video_io import read_video

    def peak():
        for line in open("/proc/self/status"):
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024

    clip, w, h, gop, margin, init = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
    if init == "tiny":  # the pipeline's memory, not the model's: a network of a few hundred weights
        cfg = NeRVConfig(pe_freqs=2, embed_dim=4, grid_channels=2, grid_anchors=1, channels=(2,), strides=(8,))
        state = NeRV(cfg, (1, 1)).state_dict()
        init = InitFile(cfg, state, init_digest(cfg, state), "tiny")
    kw = dict(steps=1, batch=1, gop=gop, size=(w, h), init=init, progress=False, overwrite=True)
    encode_ladder(clip, {5: clip + ".warm.nerv"}, frames=slice(0, 2 * gop), **kw)
    limit = peak() + margin
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    r = encode_ladder(clip, {5: clip + ".nerv"}, **kw)[5]
    print("encoded", r.num_frames, r.num_bytes, peak() <= limit, flush=True)
    try:
        read_video(clip, size=(w, h))
        print("read_video fitted")
    except MemoryError:
        print("read_video: MemoryError")
""")


def _bounded_encode(tmp_path: Path, w: int, h: int, frames: int, gop: int, margin: int, init: str) -> None:
    clip = tmp_path / f"long_{w}x{h}.yuv"
    x, y = np.arange(w)[None, :], np.arange(h)[:, None]
    with open(clip, "wb") as f:  # a moving ramp, written frame by frame
        for i in range(frames):
            f.write(((x + 2 * y + 3 * i) % 256).astype(np.uint8).tobytes())
            f.write(np.full(w * h // 2, (5 * i) % 256, np.uint8).tobytes())
    assert frames * w * h * 3 > 2 * margin  # the clip decoded is well over the margin
    env = {**os.environ, "MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 20),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-c", CHILD, str(clip), str(w), str(h), str(gop), str(margin), init],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"encoded {frames} " in p.stdout and " True" in p.stdout, p.stdout
    assert "read_video: MemoryError" in p.stdout, p.stdout  # the old whole-clip read does not fit
    reader = BitstreamReader(f"{clip}.nerv")
    assert reader.header.num_frames == frames and len(reader.sections) == -(-frames // gop)


def test_memory_does_not_grow_with_length(tmp_path):
    """288 frames of 256x256 (54 MiB decoded) in 36 GOPs under a 16 MiB margin (tiny model)."""
    _bounded_encode(tmp_path, 256, 256, 288, 8, 16 << 20, "tiny")


@pytest.mark.slow
def test_memory_does_not_grow_with_length_default_init(tmp_path):
    """The shipped init's network: 600 frames of 256x256 (112 MiB decoded), 32 MiB margin."""
    _bounded_encode(tmp_path, 256, 256, 600, 8, 32 << 20, "default")
