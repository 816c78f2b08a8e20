"""Atomic output files: a reader sees the old file or the complete new one, never a part.

Every file nervc writes (bitstreams, decoded video, init files, checkpoints, benchmark
records) goes through :func:`atomic_output`: the content is written to a hidden
``.NAME.XXXXXXXX.tmp`` beside the target, given the permissions a plain ``open()`` would have
given (``mkstemp`` makes 0600), and renamed over the target. Any exception, KeyboardInterrupt
included, removes the temporary; only a hard kill (SIGKILL, power loss) can leave it behind.
"""
from __future__ import annotations

import os
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
                  suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    With ``directory=True`` the temporary is a directory (a PNG frame folder) and an existing
    target (file or folder) is removed just before the rename.
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
        if directory and p.exists():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        os.replace(tmp, p)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> int:
    """Write ``data`` to ``path`` atomically (flushed to disk first); returns its length."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    return len(data)
