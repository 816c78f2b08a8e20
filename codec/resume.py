"""Resumable encodes: an encode stopped part-way (Ctrl-C, SIGTERM, kill -9, power loss) goes on
from the GOPs it finished (``nervc encode IN OUT.nerv --resume``) and writes the bytes the
uninterrupted encode writes.

Why it can: GOPs are independent. GOP ``i`` is fitted from the init with seed ``seed + i`` on
its own frames; no state (rate control, warm start) passes from one GOP to the next, which is
also why ``--jobs`` and ``--distributed`` write the same bytes. So a finished GOP section is
final, and the rest only needs the same plan (options, header, init) and the same frames.

Files, beside the output ``OUT.nerv`` (:func:`partial_paths`); every encode whose input is a
file writes them, with or without ``--resume``:

* ``OUT.nerv.partial``: the bitstream as far as it got, the header then the GOP sections in
  order, flushed to disk (fsync) section by section. When the last GOP is in it is read back,
  verified (``codec.writer.verify``) and renamed onto ``OUT.nerv``.
* ``OUT.nerv.partial.jsonl``: the journal (JSON lines, no pickle). Line 1 names the job the
  partial belongs to (:func:`job_record`: nervc and torch versions, the input's real path, size
  and mtime, every option that changes the bytes, the rung and the rungs fitted with it, the
  device type, the header's bytes, which hold the init's digest and the model). Then one line
  per GOP section: the SHA-256 of the section, the SHA-256 of the source frames it was fitted to
  (``codec.gopcode.frames_digest``), and what the encode reports of it that the file cannot give
  back (ANS words, estimated bits, rate weight, rollbacks, per-frame MSE).

A section is on disk before its journal line is written, and the job line before the first
section; so after any stop the journal's GOP lines describe sections that are whole. A resume
(:func:`load`) keeps the longest prefix of GOPs whose journal line is whole, whose section is
whole, CRC-valid and parses (``BitstreamReader(partial=True)``) and hashes to the line's digest;
the files are cut back to it (a section or line cut by the kill is dropped), and while the
source is decoded again each kept GOP's frames must hash to its line's source digest
(:func:`check_kept_source`). A job line that differs is refused with one line naming the
difference, leaving the files as they are. Without ``--resume`` an earlier partial is replaced
(with a note) when the first new section is written. Ctrl-C, SIGTERM and errors while fitting
keep a partial that holds finished GOPs (the CLI says how to resume); one without any, or a
finished file that does not verify, is removed. The header goes first (its length does not
depend on the counts; only a source of unknown length, a pipe, which cannot resume, has it
rewritten at the end). The partial is locked (``flock``) while written, so two encodes into
one output cannot mix.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bitstreams import BitstreamError, BitstreamReader, Header
from bitstreams.format import SECTION_OVERHEAD, check_gop_section, encode_header
from codec.gopcode import CodedRung, frames_digest
from codec.options import EncodeOptions
from nervcore.errors import NervcError

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

FORMAT = 1  # the journal's layout


class ResumeRefused(NervcError):
    """A ``--resume`` that cannot use the partial file: the files are left as they are."""


def partial_paths(output: str | os.PathLike) -> tuple[Path, Path]:
    """The partial bitstream and its journal for ``output``: ``OUT.nerv.partial``, ``.partial.jsonl``."""
    p = Path(output)
    return p.with_name(p.name + ".partial"), p.with_name(p.name + ".partial.jsonl")


def resumable(source: Any) -> bool:
    """Whether an encode of ``source`` can be resumed: a path (not ``-``, standard input)."""
    return isinstance(source, (str, os.PathLike)) and str(source) != "-"


def input_identity(source: Any, known_length: bool) -> dict | None:
    """The input a partial file is checked against: a file's (or PNG folder's) real path, size
    and mtime. None when there is none (standard input, frames in memory, a source of unknown
    length): such an encode writes the plain writer's hidden temporary and cannot resume."""
    if not resumable(source) or not known_length:
        return None
    real = os.path.realpath(source)
    st = os.stat(real)
    ident = {"path": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if os.path.isdir(real):  # a PNG folder: its files' names, sizes and times
        listing = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(real) if e.is_file())
        ident["files"] = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return ident


def job_record(identity: dict, options: EncodeOptions, quality: int, rungs: list[int], header: Header,
               device: str) -> dict:
    """What a partial file must share with an encode that continues it (JSON values)."""
    from codec.cli import version_text
    import torch

    o = options
    frames = None if o.frames is None else [o.frames.start, o.frames.stop, o.frames.step]
    record = {"nervc": version_text(), "torch": torch.__version__, "input": identity,
              "options": {"preset": o.preset, "steps": o.steps, "batch": o.batch, "lr": o.lr, "bpp": o.bpp,
                          "lam": o.lam, "tune": o.tune, "meta_lr": o.meta_lr, "gop": o.gop, "scale": o.scale,
                          "frames": frames, "size": o.size, "fps": None if o.fps is None else str(o.fps),
                          "seed": o.seed},
              "quality": quality, "rungs": sorted(rungs), "device": device, "header": encode_header(header).hex()}
    return json.loads(json.dumps(record))  # as it reads back


_NAMES = {"nervc": "the nervc version", "torch": "the torch version", "input": "the input (path, size or time)",
          "quality": "-q", "rungs": "the rungs encoded together", "device": "the device type",
          "header": "the video's header (size, frames, model or init)"}


def _difference(then: dict, now: dict) -> str:
    """The first field two job records differ in, for a one-line refusal."""
    for key in now:
        if key == "options":
            made = then.get(key) if isinstance(then.get(key), dict) else {}
            for opt, value in now[key].items():
                old = made.get(opt)
                if old != value:
                    return f"--{opt.replace('_', '-')} {old} then, {value} now"
        elif then.get(key) != now[key]:
            return f"{_NAMES.get(key, key)} differs"
    return "another journal layout"


@dataclass
class Kept:
    """What one output's partial file holds that the encode can keep."""

    rungs: list[CodedRung] = field(default_factory=list)  # per kept GOP
    ends: list[int] = field(default_factory=list)  # partial: offset after the header, then after each section
    line_ends: list[int] = field(default_factory=list)  # journal: after the job line, then each GOP line


def _lines(data: bytes) -> tuple[list[Any], list[int]]:
    """The journal's whole lines, parsed, and where each ends; stops at a line cut or damaged."""
    out, ends, pos = [], [], 0
    while (nl := data.find(b"\n", pos)) >= 0:
        try:
            out.append(json.loads(data[pos:nl]))
        except ValueError:
            break
        pos = nl + 1
        ends.append(pos)
    return out, ends


def _rung(line: Any, gi: int, raw: bytes, words: int, frames: int) -> CodedRung | None:
    """A GOP's journal line as the rung it describes, if it describes the section ``raw``."""
    try:
        if line["gop"] != gi or line["section"] != hashlib.sha256(raw).hexdigest() or line["words"] != words:
            return None
        mse = np.array(line["mse"], dtype=np.float64)
        source = bytes.fromhex(line["source"])
        if mse.shape != (frames,) or len(source) != 32:
            return None
        return CodedRung(raw, words, float(line["bits"]), float(line["lam"]), mse, int(line["rollbacks"]), source)
    except (KeyError, TypeError, ValueError):
        return None


def load(output: str | os.PathLike, job: dict) -> Kept | None:
    """The GOPs of ``output``'s partial file this ``job`` can keep; None when there is no
    partial encode to look at (no journal or no job line). A partial of another job is
    refused (:class:`ResumeRefused`)."""
    partial, journal = partial_paths(output)
    try:
        lines, line_ends = _lines(journal.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ResumeRefused(f"{journal}: cannot read ({e.strerror or e})") from None
    if not lines or not isinstance(lines[0], dict) or lines[0].get("format") != FORMAT:
        return None
    made = lines[0].get("job")
    if made != job:
        why = _difference(made if isinstance(made, dict) else {}, job)
        raise ResumeRefused(f"{partial} is from another encode ({why}): resume with the same input and "
                            "options, or encode without --resume to start again")
    head = bytes.fromhex(job["header"])
    kept = Kept(ends=[len(head)], line_ends=line_ends[:1])
    try:
        with open(partial, "rb") as f:
            if f.read(len(head)) != head:
                return kept
            reader = BitstreamReader(partial, partial=True)
            for gi, line in enumerate(lines[1:len(reader.sections) + 1]):
                s = reader.sections[gi]
                f.seek(s.offset - SECTION_OVERHEAD)
                raw = f.read(SECTION_OVERHEAD + s.length)
                rung = _rung(line, gi, raw, len(reader.read_gop(gi).words), s.num_frames)
                if rung is None:
                    break
                kept.rungs.append(rung)
                kept.ends.append(s.offset + s.length)
                kept.line_ends.append(line_ends[gi + 1])
    except FileNotFoundError:
        pass
    except BitstreamError:  # a section that does not read back (CRC, fields): it and what follows go
        pass
    except OSError as e:
        raise ResumeRefused(f"{partial}: cannot read ({e.strerror or e})") from None
    return kept


def has_finished_gops(output: str | os.PathLike) -> bool:
    """Whether ``output``'s partial file looks like an interrupted encode worth a note (a journal
    with a GOP line); cheap, checks nothing."""
    partial, journal = partial_paths(output)
    try:
        return partial.is_file() and journal.read_bytes().count(b"\n") >= 2
    except OSError:
        return False


def check_kept_source(gi: int, chunk: np.ndarray | None, rungs: dict[int, CodedRung]) -> None:
    """A kept GOP's source frames, decoded again, are those it was fitted to."""
    digest = None if chunk is None else frames_digest(chunk)
    if any(r.source != digest for r in rungs.values()):
        raise ResumeRefused(f"the input's frames of GOP {gi} are not those the partial encode fitted: "
                            "encode without --resume to start again")


class PartialWriter:
    """``BitstreamWriter``'s job on ``OUT.nerv.partial`` and its journal: sections appended
    and synced one by one, verified by the caller after :meth:`finish`, renamed by
    :meth:`commit`. Leaving the ``with`` block by an exception once a GOP is journaled keeps
    both files (and tells the exception, ``resume_note``); otherwise they are removed."""

    def __init__(self, path: Path, header: Header, job: dict, kept: Kept | None = None, keep: int = 0) -> None:
        self.path, self.header, self.job = Path(path), header, job
        self.partial, self.journal = partial_paths(path)
        self._head = encode_header(header)
        self._kept = [hashlib.sha256(r.section).digest() for r in kept.rungs[:keep]] if kept else []
        self.num_sections = self.size = self.logged = 0
        self._fd: int | None = None
        self._jfd: int | None = None
        if self._kept:  # cut both files back to the GOPs kept
            self._open(kept.ends[keep], kept.line_ends[keep])
            self.size, self.logged = kept.ends[keep], keep

    def _open(self, size: int, journal_size: int) -> None:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.partial, flags, 0o666)
            if fcntl is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        self._close()
                        raise NervcError(f"{self.partial}: another encode is writing {self.path}") from None
                    raise
            self._jfd = os.open(self.journal, flags, 0o666)
            os.ftruncate(self._fd, size)
            os.ftruncate(self._jfd, journal_size)
            if journal_size == 0:  # a new partial: its job first, then its sections
                self._append(self._jfd, (json.dumps({"format": FORMAT, "job": self.job}) + "\n").encode())
            if size == 0:
                self._append(self._fd, self._head)
                self.size = len(self._head)
        except OSError as e:
            self._close()
            raise NervcError(f"{self.partial}: cannot write ({e.strerror or e})") from None

    @staticmethod
    def _append(fd: int, data: bytes, sync: bool = True) -> None:
        os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)

    def add_coded(self, gi: int, rung: CodedRung) -> None:
        """Append GOP ``gi``'s section, then its journal line (a kept GOP: check it is the one
        the partial holds)."""
        section = rung.section
        check_gop_section(section)
        if gi != self.num_sections:
            raise NervcError(f"internal error: GOP {gi} came as section {self.num_sections}")
        self.num_sections += 1
        if gi < len(self._kept):
            if hashlib.sha256(section).digest() != self._kept[gi]:
                raise NervcError(f"internal error: kept GOP {gi} differs from the partial file's")
            return
        if self._fd is None:
            self._open(0, 0)
        line = {"gop": gi, "section": hashlib.sha256(section).hexdigest(), "source": rung.source.hex(),
                "words": rung.words, "bits": rung.bits, "lam": rung.lam, "rollbacks": rung.rollbacks,
                "mse": [float(x) for x in rung.mse]}
        try:
            self._append(self._fd, section)
            self.size += len(section)
            self._append(self._jfd, (json.dumps(line) + "\n").encode(), sync=False)
            self.logged += 1  # written: an interrupt in the sync below must not discard the GOP
            os.fsync(self._jfd)
        except OSError as e:
            raise NervcError(f"{self.partial}: cannot write ({e.strerror or e})") from None

    def finish(self, header: Header | None = None) -> Path:
        """The partial file complete (optionally with a final ``header``): its path, to verify."""
        if header is not None:
            head = encode_header(header)
            if len(head) != len(self._head):
                raise NervcError("internal error: the final header differs in length from the first")
            self.header, self._head = header, head
        if self.num_sections != self.header.num_gops or self._fd is None:
            raise NervcError(f"internal error: {self.num_sections} GOP sections written, the header "
                             f"declares {self.header.num_gops}")
        try:
            if header is not None:
                os.pwrite(self._fd, self._head, 0)
            os.fsync(self._fd)
        except OSError as e:
            raise NervcError(f"{self.partial}: cannot write ({e.strerror or e})") from None
        return self.partial

    def commit(self) -> int:
        """Rename the finished partial onto the output, drop the journal; returns the size."""
        try:
            os.replace(self.partial, self.path)
            os.unlink(self.journal)
        except OSError as e:
            raise NervcError(f"{self.path}: cannot write ({e.strerror or e})") from None
        self._close()
        return self.size

    def abort(self) -> None:
        """Remove the partial and its journal, if this writer opened them."""
        if self._fd is not None:
            for p in (self.partial, self.journal):
                try:
                    p.unlink()
                except OSError:
                    pass
        self._close()

    def _close(self) -> None:
        for fd in (self._fd, self._jfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = self._jfd = None

    def __enter__(self) -> "PartialWriter":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if self._fd is None:  # committed, aborted, or never opened (an earlier partial untouched)
            return
        if value is not None and self.logged:  # stopped part-way: keep it to resume
            if not isinstance(value, ResumeRefused) and not hasattr(value, "resume_note"):
                value.resume_note = f"{self.partial} keeps {self.logged} of {self.header.num_gops} GOPs"
            self._close()
            return
        self.abort()


def open_outputs(paths: dict[int, Path], header: Header, records: dict[int, dict] | None,
                 resume: bool) -> tuple[list[dict[int, CodedRung]], Callable[[int], PartialWriter] | None]:
    """The GOPs a resumed encode keeps (per GOP, its rungs) and the function that opens each
    rung's writer (None: ``codec.writer``'s hidden temporary). ``records``: each rung's
    :func:`job_record`, None when the input cannot resume."""
    if records is None:
        return [], None
    loaded: dict[int, Kept | None] = {q: load(p, records[q]) if resume else None for q, p in paths.items()}
    for q, p in paths.items():
        if resume and not (loaded[q] and loaded[q].rungs):
            print(f"nervc: note: no finished GOP of an interrupted encode of {p} to resume from; encoding "
                  "from the start", file=sys.stderr)
        elif not resume and has_finished_gops(p):
            print(f"nervc: note: found an interrupted encode ({partial_paths(p)[0]}); rerun with --resume "
                  "to continue it (this encode replaces it)", file=sys.stderr)
    keep = min((len(k.rungs) if k else 0) for k in loaded.values()) if paths else 0
    kept = [{q: loaded[q].rungs[i] for q in paths} for i in range(keep)]
    return kept, lambda q: PartialWriter(paths[q], header, records[q], loaded[q], keep)
