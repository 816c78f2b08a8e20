"""Interrupted runs never leave a partial output.

A real ``python -m codec`` process is interrupted with SIGINT, SIGTERM or SIGKILL while it
trains and while it writes. Afterwards the output is either the old file or absent, never a
partial one. SIGINT and SIGTERM unwind (exit 130) and remove their temporary files (an encode
that finished no GOP yet keeps nothing); after SIGKILL nothing can clean up, so the only things
allowed to remain are the writer's hidden temporary (``.NAME.XXXXXXXX.tmp`` for .nerv files,
``.NAME.XXXXXXXX.EXT`` for videos) or an encode's partial file and journal (``NAME.partial``,
``NAME.partial.jsonl``: what ``--resume`` continues from, tests/test_resume.py).

The "while it writes" cases stall the writer at a known point (a patched ``os.fsync`` for the
.nerv writer, a patched frame iterator for the video writer) so the signal lands inside the
write window deterministically. The default suite runs one signal per phase (plus kill -9
while writing); ``pytest -m slow tests/test_hostile_atomic.py`` runs the rest.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nervcore.video_io import read_video, write_video
from tests.conftest import DATA
from tests.fuzz.mutate import CORPUS

REPO = Path(__file__).resolve().parents[1]
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
STALL_FSYNC = """
import os, sys, time
def stall(fd):
    sys.stderr.write("\\nSTALLED-IN-WRITE\\n"); sys.stderr.flush(); time.sleep(300)
os.fsync = stall
"""
STALL_VIDEO = """
import sys, time
import nervcore.video_io as vio
real = vio._encode_container
def slow(name, kind, frames, *a):
    def gen():
        for i, f in enumerate(frames):
            if i == 1:
                sys.stderr.write("\\nSTALLED-IN-WRITE\\n"); sys.stderr.flush(); time.sleep(300)
            yield f
    return real(name, kind, gen(), *a)
vio._encode_container = slow
"""
def _sigs(*fast: str) -> list:
    """All three signals; those not in ``fast`` only run with ``-m slow`` (time budget)."""
    return [pytest.param(n, id=n, marks=() if n in fast else pytest.mark.slow) for n in SIGNALS]


# A shell without job control starts background jobs with SIGINT ignored, and Python keeps an
# inherited SIG_IGN; the child gets Ctrl-C's default behaviour back whoever started the tests.
RUN_CLI = ("\nimport signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
           "from codec.cli import main\nsys.exit(main(sys.argv[1:]))\n")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    v = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 4))
    p = tmp_path_factory.mktemp("src") / "clip.mkv"
    write_video(p, v.frames[:, 40:72, 40:88], v.fps, 48, 32)
    return p


def _run_until(argv: list[str], marker: str, log: Path, prelude: str = "import sys\n",
               timeout: float = 120) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    logf = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-c", prelude + RUN_CLI, *argv], cwd=REPO, env=env,
                            stdout=logf, stderr=logf)
    logf.close()
    deadline = time.monotonic() + timeout
    while marker not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {marker!r}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {marker!r} after {timeout} s: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def _interrupt(proc: subprocess.Popen, sig: signal.Signals, log: Path) -> str:
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"did not stop on {sig.name}")
    text = log.read_text(errors="replace")
    if sig == signal.SIGKILL:
        assert rc == -signal.SIGKILL
    else:
        assert rc == 130, (rc, text[-2000:])
        assert "interrupted (no partial output was written)" in text
    return text


def _check_dir(d: Path, keep: dict[str, bytes], sig: signal.Signals, out_name: str, tmp_suffix: str) -> None:
    names = sorted(p.name for p in d.iterdir())
    extra = [n for n in names if n not in keep]
    if sig == signal.SIGKILL:
        pattern = re.compile(rf"\.{re.escape(out_name)}\.[A-Za-z0-9_]+{re.escape(tmp_suffix)}")
        partial = {f"{out_name}.partial", f"{out_name}.partial.jsonl"} if out_name.endswith(".nerv") else set()
        assert (all(pattern.fullmatch(n) for n in extra) and len(extra) <= 1) or set(extra) <= partial, names
    else:
        assert extra == [], names
    for name, content in keep.items():
        assert (d / name).read_bytes() == content, f"{name} changed"


@pytest.mark.parametrize("sig", _sigs("SIGTERM"))
def test_encode_interrupted_while_training_keeps_the_old_file(tmp_path, clip, sig):
    d = tmp_path / "out"
    d.mkdir()
    old = (CORPUS / "seed_tinyA_8x8_q3_gop2.nerv").read_bytes()
    (d / "o.nerv").write_bytes(old)
    log = tmp_path / "log"
    proc = _run_until(["encode", str(clip), str(d / "o.nerv"), "-y", "--steps", "1000000",
                       "--init", "random"], "fit", log)
    time.sleep(0.3)
    _interrupt(proc, SIGNALS[sig], log)
    _check_dir(d, {"o.nerv": old}, SIGNALS[sig], "o.nerv", ".tmp")


@pytest.mark.parametrize("sig", _sigs("SIGINT", "SIGKILL"))
def test_encode_interrupted_while_writing_keeps_the_old_file(tmp_path, clip, sig):
    d = tmp_path / "out"
    d.mkdir()
    old = (CORPUS / "seed_tinyA_8x8_q3_gop2.nerv").read_bytes()
    (d / "o.nerv").write_bytes(old)
    log = tmp_path / "log"
    proc = _run_until(["encode", str(clip), str(d / "o.nerv"), "-y", "--steps", "1", "--init", "random",
                       "--quiet"], "STALLED-IN-WRITE", log, prelude=STALL_FSYNC)
    _interrupt(proc, SIGNALS[sig], log)
    _check_dir(d, {"o.nerv": old}, SIGNALS[sig], "o.nerv", ".tmp")


@pytest.mark.slow
def test_encode_interrupted_while_writing_a_new_file_leaves_none(tmp_path, clip):
    d = tmp_path / "out"
    d.mkdir()
    log = tmp_path / "log"
    proc = _run_until(["encode", str(clip), str(d / "n.nerv"), "--steps", "1", "--init", "random",
                       "--quiet"], "STALLED-IN-WRITE", log, prelude=STALL_FSYNC)
    _interrupt(proc, signal.SIGTERM, log)
    assert list(d.iterdir()) == []


@pytest.mark.parametrize("sig", _sigs("SIGTERM"))
def test_decode_interrupted_while_writing_keeps_the_old_file(tmp_path, sig):
    d = tmp_path / "out"
    d.mkdir()
    (d / "o.mkv").write_bytes(b"old video")
    log = tmp_path / "log"
    proc = _run_until(["decode", str(CORPUS / "seed_tinyA_8x8_q3_gop2.nerv"), str(d / "o.mkv"), "-y",
                       "--init", str(CORPUS / "init_tinyA.safetensors"), "--device", "cpu", "--quiet"],
                      "STALLED-IN-WRITE", log, prelude=STALL_VIDEO)
    _interrupt(proc, SIGNALS[sig], log)
    _check_dir(d, {"o.mkv": b"old video"}, SIGNALS[sig], "o.mkv", ".tmp")  # atomic_output names every temp .tmp


def test_meta_train_killed_then_resumed(tmp_path):
    """kill -9 in the middle of meta-training: the checkpoint is whole (old or new, never torn),
    ``--resume`` finishes the run and writes a loadable init."""
    from metanerv.checkpoint import load_checkpoint
    from metanerv.init_file import load_init

    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("bus_qcif_30f.264", "desk_320x240_36f.mp4"):
        (clips / name).symlink_to(DATA / "fixtures" / name)
    d = tmp_path / "out"
    d.mkdir()
    out = d / "init.safetensors"
    tiny = ["--tiny", "--sides", "32,48", "--frames", "4", "--frames-start", "2", "--batch", "3",
            "--inner-steps", "2", "--max-frames", "8", "--short-side", "64", "--threads", "1",
            "--ckpt-minutes", "0", "--algo", "fomaml", "--seed", "5"]
    log = tmp_path / "log"
    proc = _run_until(["meta-train", str(clips), "--out", str(out), "--steps", "100000", *tiny],
                      "meta-train", log)
    ckpt = Path(str(out) + ".ckpt")
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    first = ckpt.stat().st_mtime_ns
    while ckpt.stat().st_mtime_ns == first and time.monotonic() < deadline:  # mid-run, not at start
        time.sleep(0.02)
    _interrupt(proc, signal.SIGKILL, log)
    assert not out.exists()
    _, state = load_checkpoint(ckpt)  # whole, not torn
    step = state["step"]
    assert step >= 1
    leftovers = [p.name for p in d.iterdir() if p.name not in (ckpt.name,)]
    assert all(n.startswith(f".{ckpt.name}.") for n in leftovers), leftovers  # hidden temp at most
    from codec.cli import main
    assert main(["meta-train", str(clips), "--out", str(out), "--steps", str(step + 1), "--resume",
                 "--quiet", *tiny]) == 0
    init = load_init(out)
    assert init.info["steps"] == step + 1
