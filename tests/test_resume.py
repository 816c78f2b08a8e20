"""``nervc encode ... --resume``: an encode stopped part-way (kill -9, Ctrl-C, an error) goes on
from the GOPs in ``OUT.nerv.partial`` and writes the bytes the uninterrupted encode writes,
serially and with ``--jobs 2``; a partial of another job is refused and left alone.

The clip is 64x48, 12 frames in GOPs of 2 (six GOPs) fitted 10 steps from the random init: a
GOP takes a fraction of a second, so a real process can be killed between GOPs by watching the
journal grow. The in-process cases stop an encode with a KeyboardInterrupt raised by the GOP
fit itself (the unwinding SIGINT causes), at a known GOP.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import codec.parallel
from bitstreams import BitstreamReader
from codec import cli
from codec.encoder import encode
from codec.resume import partial_paths
from nervcore.video_io import read_video, write_video
from tests.conftest import DATA, REPO

GOPS = 6
ARGS = ["--gop", "2", "--steps", "10", "--init", "random", "--quiet"]
KW = dict(gop=2, steps=10, init="random", progress=False)  # ARGS in the Python API
RUN_CLI = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
           "from codec.cli import main\nsys.exit(main(sys.argv[1:]))\n")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    v = read_video(DATA / "fixtures" / "bus_qcif_30f.264", frames=slice(0, 2 * GOPS))
    p = tmp_path_factory.mktemp("src") / "clip.mkv"
    write_video(p, np.ascontiguousarray(v.frames[:, 40:88, 40:104]), v.fps, 64, 48)
    return p


@pytest.fixture(scope="module")
def whole(clip, tmp_path_factory):
    """The uninterrupted encode."""
    return encode(clip, tmp_path_factory.mktemp("ref") / "ref.nerv", **KW)


@pytest.fixture(scope="module")
def ref(whole) -> bytes:
    return Path(whole.path).read_bytes()


def _journal_gops(out: Path) -> int:
    try:
        return max(partial_paths(out)[1].read_bytes().count(b"\n") - 1, 0)
    except FileNotFoundError:
        return 0


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-c", RUN_CLI, *argv], cwd=REPO, env=env, stdout=f, stderr=f)


def _stop_after(proc: subprocess.Popen, out: Path, gops: int, sig: signal.Signals, log: Path,
                delay: float = 0.0) -> int:
    """Send ``sig`` once the journal names ``gops`` GOPs (and ``delay`` s more); the exit status."""
    deadline = time.monotonic() + 240
    while _journal_gops(out) < gops:
        assert proc.poll() is None, f"exited {proc.returncode} early: {log.read_text()[-2000:]}"
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no GOP {gops} in the journal: {log.read_text()[-2000:]}")
        time.sleep(0.01)
    time.sleep(delay)
    assert proc.poll() is None, "the encode finished before it could be stopped"
    proc.send_signal(sig)
    return proc.wait(timeout=60)


def _resume(clip: Path, out: Path, extra: list[str], capsys) -> str:
    assert cli.main(["encode", str(clip), str(out), *ARGS, *extra, "--resume"]) == 0
    text = capsys.readouterr().out
    assert not any(p.exists() for p in partial_paths(out)), "the partial files outlived the encode"
    return text


@pytest.mark.parametrize("jobs", [[], ["--jobs", "2"]], ids=["serial", "jobs2"])
def test_killed_encode_resumes_to_the_same_bytes(clip, ref, tmp_path, capsys, jobs):
    """kill -9 after the first GOP section is in: --resume keeps what is there, same bytes."""
    out, log = tmp_path / "o.nerv", tmp_path / "log"
    rc = _stop_after(_start(["encode", str(clip), str(out), *ARGS, *jobs], log), out, 1, signal.SIGKILL, log)
    assert rc == -signal.SIGKILL and not out.exists()
    kept = len(BitstreamReader(partial_paths(out)[0], partial=True).sections)
    assert 1 <= kept < GOPS
    text = _resume(clip, out, jobs, capsys)
    assert out.read_bytes() == ref
    assert "resumed: the first" in text


def test_sigint_keeps_the_partial_and_says_how_to_resume(clip, ref, tmp_path, capsys):
    """Ctrl-C (SIGINT to a real process, ``--jobs 2``): exit 130, one line saying how to resume."""
    out, log = tmp_path / "o.nerv", tmp_path / "log"
    rc = _stop_after(_start(["encode", str(clip), str(out), *ARGS, "--jobs", "2"], log), out, 1, signal.SIGINT, log)
    lines = [x for x in log.read_text().splitlines() if x.startswith("nervc")]
    assert rc == 130, log.read_text()[-2000:]
    assert len(lines) == 1 and "rerun the same command with --resume to continue" in lines[0], lines
    assert f"{out}.partial keeps " in lines[0]
    _resume(clip, out, [], capsys)  # resumed without --jobs: the bytes do not depend on the split
    assert out.read_bytes() == ref


def _interrupt_at(monkeypatch, gop: int, exc: BaseException) -> None:
    """The GOP fit raises ``exc`` when it reaches GOP ``gop`` (serial encodes)."""
    real = codec.parallel.code_gop

    def code_gop(chunk, gi, *a, **k):
        if gi == gop:
            raise exc
        return real(chunk, gi, *a, **k)

    monkeypatch.setattr(codec.parallel, "code_gop", code_gop)


@pytest.fixture(scope="module")
def stopped_once(clip, tmp_path_factory) -> Path:
    """An encode interrupted at GOP 3 (three GOPs in its partial file), made once."""
    out = tmp_path_factory.mktemp("stopped") / "o.nerv"
    with pytest.MonkeyPatch.context() as m:
        _interrupt_at(m, 3, KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt) as e:
            encode(clip, out, **KW)
    assert e.value.resume_note == f"{out}.partial keeps 3 of {GOPS} GOPs"
    assert len(BitstreamReader(partial_paths(out)[0], partial=True).sections) == 3
    return out


@pytest.fixture
def stopped(stopped_once, tmp_path) -> Path:
    """A copy of ``stopped_once``'s partial files for another output name (the job does not
    name its output)."""
    out = tmp_path / "o.nerv"
    for a, b in zip(partial_paths(stopped_once), partial_paths(out)):
        shutil.copyfile(a, b)
    return out


def test_interrupted_in_process_says_how_to_resume(clip, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o.nerv"
    _interrupt_at(monkeypatch, 1, KeyboardInterrupt())
    assert cli.main(["encode", str(clip), str(out), *ARGS]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nervc: interrupted; {out}.partial keeps 1 of {GOPS} GOPs: rerun the same command "
                   "with --resume to continue"]


def test_resume_reports_what_the_uninterrupted_encode_reports(clip, ref, whole, stopped):
    """The result (PSNR, estimated bytes, rate weight) is the whole file's, not this run's part."""
    r = encode(clip, stopped, **KW, resume=True)
    assert stopped.read_bytes() == ref
    assert (r.psnr, r.estimated_bytes, r.lam, r.steps, r.kept_gops) == (
        whole.psnr, whole.estimated_bytes, whole.lam, whole.steps, 3)


@pytest.mark.parametrize("change, why", [
    (["--steps", "11"], "--steps 10 then, 11 now"),
    (["-q", "4"], "-q differs"),
    (["--seed", "1"], "--seed 0 then, 1 now"),
    (["--input"], "the input"),
], ids=["steps", "quality", "seed", "input"])
def test_resume_of_another_job_is_refused_and_the_partial_kept(clip, stopped, tmp_path, capsys, change, why):
    argv = ["encode", str(clip), str(stopped), *ARGS, "--resume"]
    if change == ["--input"]:
        other = tmp_path / "other.mkv"
        other.write_bytes(clip.read_bytes())  # the same frames, another file
        argv[1] = str(other)
    else:
        argv += change
    before = [p.read_bytes() for p in partial_paths(stopped)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is from another encode" in err[0] and why in err[0], err
    assert [p.read_bytes() for p in partial_paths(stopped)] == before and not stopped.exists()


def test_without_resume_a_partial_is_replaced_with_a_note(clip, ref, stopped, capsys):
    assert cli.main(["encode", str(clip), str(stopped), *ARGS]) == 0
    assert "found an interrupted encode" in capsys.readouterr().err
    assert stopped.read_bytes() == ref and not any(p.exists() for p in partial_paths(stopped))


def test_resume_without_a_partial_encodes_from_the_start(clip, ref, tmp_path, capsys):
    out = tmp_path / "o.nerv"
    assert cli.main(["encode", str(clip), str(out), *ARGS, "--resume"]) == 0
    assert "no finished GOP of an interrupted encode" in capsys.readouterr().err
    assert out.read_bytes() == ref


@pytest.mark.parametrize("damage", ["cut-section", "flipped-byte", "cut-journal-line", "extra-section"])
def test_a_damaged_partial_keeps_only_its_good_gops(clip, ref, stopped, capsys, damage):
    """A section cut short or corrupted (CRC), a journal line cut: those GOPs are fitted again;
    a whole section the journal does not name yet (a kill between the two writes) too."""
    partial, journal = partial_paths(stopped)
    data = partial.read_bytes()
    last = BitstreamReader(partial, partial=True).sections[-1]
    if damage == "cut-section":
        partial.write_bytes(data[:-7])
    elif damage == "flipped-byte":
        partial.write_bytes(data[:last.offset + 5] + bytes([data[last.offset + 5] ^ 1]) + data[last.offset + 6:])
    elif damage == "cut-journal-line":
        journal.write_bytes(journal.read_bytes()[:-9])
    else:
        lines = journal.read_bytes().splitlines(keepends=True)
        journal.write_bytes(b"".join(lines[:-1]))
    r = encode(clip, stopped, **KW, resume=True)
    assert r.kept_gops == 2 and stopped.read_bytes() == ref


def test_an_error_keeps_the_partial_and_says_so(clip, ref, tmp_path, monkeypatch, capsys):
    """A failure while fitting (here a worker's death) keeps the finished GOPs for --resume."""
    out = tmp_path / "o.nerv"
    from nervcore.errors import NervcError
    with monkeypatch.context() as m:
        _interrupt_at(m, 2, NervcError("a --jobs worker process died (out of memory?); try fewer --jobs"))
        assert cli.main(["encode", str(clip), str(out), *ARGS]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"({out}.partial keeps 2 of {GOPS} GOPs: --resume continues)"), err
    _resume(clip, out, [], capsys)
    assert out.read_bytes() == ref


def test_resume_needs_an_input_file(tmp_path, capsys):
    assert cli.main(["encode", "-", str(tmp_path / "o.nerv"), *ARGS, "--resume"]) == 1
    assert "--resume needs an input file" in capsys.readouterr().err
    assert cli.main(["encode", "x.y4m", str(tmp_path / "o.nerv"), "--resume", "--distributed"]) == 1
    assert "--resume does not combine with --distributed" in capsys.readouterr().err


def test_the_journal_is_plain_json(stopped):
    """No pickle: the journal is JSON lines, the job first, then one line per GOP section."""
    lines = [json.loads(x) for x in partial_paths(stopped)[1].read_text().splitlines()]
    assert lines[0]["format"] == 1 and lines[0]["job"]["options"]["steps"] == 10
    assert [x["gop"] for x in lines[1:]] == [0, 1, 2]


@pytest.mark.slow
def test_ten_random_kill_points_resume_to_the_same_bytes(clip, ref, tmp_path, capsys):
    """kill -9 at ten seeded points (after 1 to 3 GOPs, plus 0-0.3 s: inside fits, inside
    writes), every third with --jobs 2; each partial resumed to the uninterrupted bytes."""
    rng = random.Random(34)
    for i in range(10):
        out, log = tmp_path / f"o{i}.nerv", tmp_path / f"log{i}"
        jobs = ["--jobs", "2"] if i % 3 == 2 else []
        proc = _start(["encode", str(clip), str(out), *ARGS, *jobs], log)
        _stop_after(proc, out, rng.randint(1, GOPS - 3), signal.SIGKILL, log, delay=rng.uniform(0.0, 0.3))
        _resume(clip, out, jobs, capsys)
        assert out.read_bytes() == ref, i
