"""The same .nerv file decodes to the same frames everywhere; the same encode gives the same file.

A decoder that depends on the thread count, the process or the hash seed would make a
bitstream mean different pictures on different machines (and break bit-exact conformance
checks), so decodes and encodes run in fresh processes with 1 and 2 torch threads and
different PYTHONHASHSEEDs, and must agree byte for byte with each other and with this process.
CPU against CUDA cannot be bit-exact (different kernels), so it gets a 2-level tolerance.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import codec
from nervcore.video_io import read_video, write_video
from tests.conftest import DATA, REPO

STEPS = 5
# argv: threads, "encode" SRC OUT | "decode" NERV OUT.npy
SCRIPT = """
import sys
import torch
torch.set_num_threads(int(sys.argv[1]))
import numpy as np
import codec
if sys.argv[2] == "encode":
    codec.encode(sys.argv[3], sys.argv[4], steps=int(sys.argv[5]), progress=False)
else:
    np.save(sys.argv[4], codec.decode(sys.argv[3], device="cpu", progress=False).frames)
assert torch.get_num_threads() == int(sys.argv[1])
"""


def _run_in_processes(*jobs: tuple[int, list[str]]) -> None:
    """Run one fresh ``python -c SCRIPT`` per (threads, args), all at once, and wait."""
    procs = []
    for i, (threads, args) in enumerate(jobs):
        env = {**os.environ, "PYTHONHASHSEED": str(100 + i), "OMP_NUM_THREADS": str(threads)}
        procs.append(subprocess.Popen([sys.executable, "-c", SCRIPT, str(threads), *args], cwd=REPO,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> tuple[Path, Path]:
    """A 32x32, 3-frame lossless source and its .nerv (default init, 5 steps), made here."""
    d = tmp_path_factory.mktemp("det")
    v = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 3))
    src = d / "src.mkv"
    write_video(src, v.frames[:, 40:72, 60:92], v.fps, 32, 32)
    nerv = d / "clip.nerv"
    codec.encode(src, nerv, steps=STEPS, progress=False)
    return src, nerv


def test_decode_is_identical_across_processes_and_thread_counts(encoded, tmp_path):
    """One file, three decodes (this process, a 1-thread and a 2-thread process): the same bytes."""
    _, nerv = encoded
    here = codec.decode(nerv, device="cpu", progress=False).frames
    _run_in_processes((1, ["decode", str(nerv), str(tmp_path / "t1.npy")]),
                      (2, ["decode", str(nerv), str(tmp_path / "t2.npy")]))
    one, two = np.load(tmp_path / "t1.npy"), np.load(tmp_path / "t2.npy")
    assert one.shape == (3, 32, 32, 3) and one.dtype == np.uint8
    assert np.array_equal(one, two), "1 and 2 threads decode the same file differently"
    assert np.array_equal(one, here), "a fresh process decodes differently from this one"
    assert one.std() > 1  # a real picture, not a constant that any decoder would agree on


def test_encode_is_identical_across_processes_and_thread_counts(encoded, tmp_path):
    """Encoding is deterministic too (fixed seeds, no thread-dependent reductions today): the
    same source and options give the same bytes in any process with 1 or 2 threads."""
    src, nerv = encoded
    _run_in_processes((1, ["encode", str(src), str(tmp_path / "t1.nerv"), str(STEPS)]),
                      (2, ["encode", str(src), str(tmp_path / "t2.nerv"), str(STEPS)]))
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (nerv, tmp_path / "t1.nerv", tmp_path / "t2.nerv")}
    assert len(digests) == 1, "the encoder's output depends on the process or the thread count"


def test_cuda_decode_matches_cpu(encoded):
    """On a machine with CUDA: GPU and CPU decodes of one file differ by at most 2 levels."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    _, nerv = encoded
    cpu = codec.decode(nerv, device="cpu", progress=False)
    gpu = codec.decode(nerv, device="cuda", progress=False)
    assert gpu.device.startswith("cuda") and cpu.device == "cpu"
    diff = np.abs(cpu.frames.astype(np.int16) - gpu.frames.astype(np.int16))
    assert cpu.frames.shape == gpu.frames.shape and diff.max() <= 2, diff.max()
