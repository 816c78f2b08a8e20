"""Atomic output files: a reader sees the old file or the complete new one, never a part.

Every file nervc writes (bitstreams, decoded video, init files, checkpoints, benchmark
records) goes through :func:`atomic_output`: the content is written to a hidden
``.NAME.XXXXXXXX.tmp`` beside the target, given the permissions a plain ``open()`` would have
given (``mkstemp`` makes 0600), and renamed over the target. Any exception, KeyboardInterrupt
included, removes the temporary; only a hard kill (SIGKILL, power loss) can leave it behind.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def current_umask() -> int:
    """The process umask (``os.umask`` can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | os.PathLike, *, directory: bool = False,
                  suffix: str = ".tmp", own_files: re.Pattern | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    With ``directory=True`` the temporary is a directory (a PNG frame folder). An existing
    target must then be a folder holding only files whose names match ``own_files`` (the frames
    an earlier run wrote): those are removed just before the rename, and anything else in it (or
    a target that is not a folder) makes the output fail with nothing of the user's touched.
    Nothing else is ever deleted: a file target is replaced by the rename alone.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=suffix, dir=parent))
        mode = 0o777
    else:
        fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=parent)
        os.close(fd)
        tmp = Path(name)
        mode = 0o666
    try:
        yield tmp
        os.chmod(tmp, mode & ~current_umask())
        if directory and (p.exists() or p.is_symlink()):
            _clear_own_folder(p, own_files)
        os.replace(tmp, p)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def _clear_own_folder(p: Path, own_files: re.Pattern | None) -> None:
    """Empty ``p`` of the files ``own_files`` names, refusing if it holds anything else."""
    if p.is_symlink() or not p.is_dir():
        raise FileExistsError(errno.EEXIST, "exists and is not a folder", str(p))
    entries = list(p.iterdir())
    foreign = [e for e in entries if own_files is None or e.is_symlink() or not e.is_file()
               or not own_files.fullmatch(e.name)]
    if foreign:
        raise FileExistsError(errno.ENOTEMPTY, f"folder holds other files ({foreign[0].name})", str(p))
    for e in entries:
        e.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> int:
    """Write ``data`` to ``path`` atomically (flushed to disk first); returns its length."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    return len(data)
