"""``-`` is a pipe both ways (y4m, as ffmpeg's yuv4mpegpipe), and decoding streams GOP by GOP.

Real processes and real pipes: ``python (y4m writer) | nervc encode - o.nerv`` and
``nervc decode o.nerv - | python (y4m reader)``; a reader that stops early; y4m headers as
FFmpeg writes them (C420jpeg, C420mpeg2, C444). The streaming decode runs under an
address-space limit that the whole decoded video would exceed, as the encoder's test does.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from bitstreams import BitstreamReader

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
NERVC = [sys.executable, "-m", "codec"]
ENC = ["--init", "random", "--steps", "2", "--quiet"]


def y4m(frames: int, w: int, h: int, chroma: str = "420jpeg") -> bytes:
    """A y4m stream of a moving ramp, written as FFmpeg's yuv4mpegpipe muxer lays it out."""
    x, y = np.arange(w)[None, :], np.arange(h)[:, None]
    cw, ch = (w, h) if chroma == "444" else ((w + 1) // 2, (h + 1) // 2)
    out = [f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C{chroma}\n".encode()]
    for i in range(frames):
        out.append(b"FRAME\n")
        out.append(((x + 2 * y + 7 * i) % 220 + 16).astype(np.uint8).tobytes())
        out.append(np.full(cw * ch, 100 + i, np.uint8).tobytes())
        out.append(np.full(cw * ch, 150 - i, np.uint8).tobytes())
    return b"".join(out)


def read_y4m(data: bytes) -> tuple[str, list[bytes]]:
    header, _, rest = data.partition(b"\n")
    frames = rest.split(b"FRAME\n")
    return header.decode(), [f for f in frames if f]


@pytest.mark.parametrize("chroma", ["420jpeg", "420mpeg2", "444"])
def test_pipe_round_trip(tmp_path, chroma):
    """y4m in on stdin, y4m out on stdout, every message on stderr, no file named '-'."""
    src = y4m(6, 32, 24, chroma)
    enc = subprocess.run([*NERVC, "encode", "-", "o.nerv", *ENC], input=src, cwd=tmp_path, env=ENV,
                         capture_output=True, timeout=300)
    assert enc.returncode == 0, enc.stderr.decode()[-2000:]
    h = BitstreamReader(tmp_path / "o.nerv").header
    assert (h.width, h.height, h.num_frames, h.fps) == (32, 24, 6, 25)
    dec = subprocess.run([*NERVC, "decode", "o.nerv", "-", "--quiet"], cwd=tmp_path, env=ENV,
                         capture_output=True, timeout=300)
    assert dec.returncode == 0, dec.stderr.decode()[-2000:]
    header, frames = read_y4m(dec.stdout)
    assert header.startswith("YUV4MPEG2 W32 H24 F25:1") and len(frames) == 6
    assert all(len(f) == 32 * 24 * 3 // 2 for f in frames)
    assert b"6 frames" in dec.stderr and b"frames" not in dec.stdout[:60]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.nerv"]


def test_pipe_reader_closing_early_ends_quietly_with_141(tmp_path):
    subprocess.run([*NERVC, "encode", "-", "o.nerv", *ENC], input=y4m(12, 64, 48), cwd=tmp_path, env=ENV,
                   check=True, capture_output=True, timeout=300)
    p = subprocess.Popen([*NERVC, "decode", "o.nerv", "-", "--quiet"], cwd=tmp_path, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(100)  # the header and a little of the first frame, then the reader goes away
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=300) == 141
    assert err == b"", err.decode()


def test_pipe_input_that_is_not_y4m(tmp_path):
    p = subprocess.run([*NERVC, "encode", "-", "o.nerv", *ENC], input=b"not a video at all" * 10,
                       cwd=tmp_path, env=ENV, capture_output=True, timeout=300)
    err = p.stderr.decode().strip().splitlines()
    assert p.returncode == 1 and len(err) == 1 and "not a y4m stream" in err[0], err
    assert list(tmp_path.iterdir()) == []


# The decode's memory: warm up on a short range, cap the address space at the peak plus MARGIN
# (less than the decoded video), decode the whole file into a .y4m (must fit) and into memory
# (must not).
CHILD = textwrap.dedent("""
    import resource, sys
    import torch
    torch.set_num_threads(1)
    from codec.decoder import decode

    def peak():
        for line in open("/proc/self/status"):
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024

    nerv, margin, init = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    decode(nerv, nerv + ".warm.y4m", frames=slice(0, 16), init=[init], overwrite=True)
    limit = peak() + margin
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    r = decode(nerv, nerv + ".y4m", init=[init], overwrite=True)
    print("decoded", r.num_frames, peak() <= limit, flush=True)
    try:
        decode(nerv, init=[init])
        print("in memory fitted")
    except MemoryError:
        print("in memory: MemoryError")
""")


def test_decode_memory_does_not_grow_with_length(tmp_path):
    """288 frames of 256x256 (54 MiB decoded) in 36 GOPs, decoded under a 16 MiB margin."""
    import torch

    from codec.encoder import encode_ladder
    from metanerv.init_file import InitFile, init_digest, save_init
    from metanerv.model import NeRV, NeRVConfig
    from nervcore.video_io import Video

    torch.manual_seed(0)
    cfg = NeRVConfig(pe_freqs=2, embed_dim=4, grid_channels=2, grid_anchors=1, channels=(2,), strides=(8,))
    state = NeRV(cfg, (1, 1)).state_dict()
    init_path = tmp_path / "tiny.safetensors"
    save_init(init_path, cfg, state)
    x, y = np.arange(256)[None, :], np.arange(256)[:, None]
    frames = np.stack([np.repeat(((x + 2 * y + 3 * i) % 256).astype(np.uint8)[..., None], 3, axis=2)
                       for i in range(288)])
    nerv = tmp_path / "long.nerv"
    encode_ladder(Video(frames, Fraction(25)), {5: nerv}, steps=0, gop=8,
                  init=InitFile(cfg, state, init_digest(cfg, state), "tiny"), progress=False)
    del frames
    env = {**ENV, "MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    p = subprocess.run([sys.executable, "-c", CHILD, str(nerv), str(16 << 20), str(init_path)], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "decoded 288 True" in p.stdout, p.stdout
    assert "in memory: MemoryError" in p.stdout, p.stdout
    header, out = read_y4m((tmp_path / "long.nerv.y4m").read_bytes())
    assert len(out) == 288 and len(BitstreamReader(nerv).sections) == 36
