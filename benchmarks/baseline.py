"""Code of an earlier commit, imported from a git worktree of it: the timed baseline of
``benchmarks/speed.py`` (and of tests/test_fit_loop.py) is the encoder's fit loop as commit
``BASELINE_REF`` had it, checked out with ``git worktree add`` rather than copied into the tree
(a copy drifts: it imported live helpers).

:func:`load` imports modules of that tree under their own names in a private ``sys.modules``
namespace and restores the live packages afterwards, so the old and the current loop run side
by side in one process; each old module keeps referring to the old modules it imported.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

BASELINE_REF = "4b943a8"  # the v2 fit loop: per-tensor rate graph, per-step host reads
PACKAGES = ("benchmarks", "bitstreams", "codec", "metanerv", "nervcore")
REPO = Path(__file__).resolve().parent.parent


class BaselineError(RuntimeError):
    """The ref cannot be checked out (no git, not a checkout, or the ref is not in its history)."""


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        why = getattr(e, "stderr", "") or str(e)
        raise BaselineError(f"git {' '.join(args)}: {why.strip()}") from None
    return done.stdout.strip()


def worktree(ref: str = BASELINE_REF) -> Path:
    """A detached worktree of ``ref`` in the temporary folder, added once and reused."""
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    where = Path(tempfile.gettempdir()) / f"nervc-baseline-{sha[:12]}"
    if not (where / ".git").exists():
        _git("worktree", "prune")
        _git("worktree", "add", "--detach", "--force", str(where), sha)
    return where


def load(*modules: str, ref: str = BASELINE_REF) -> list[ModuleType]:
    """The modules ``modules`` (e.g. ``"codec.finetune"``) as ``ref`` had them."""
    tree = str(worktree(ref))
    ours = lambda name: name.split(".")[0] in PACKAGES  # noqa: E731
    live = {k: sys.modules.pop(k) for k in list(sys.modules) if ours(k)}
    sys.path.insert(0, tree)
    try:
        return [importlib.import_module(m) for m in modules]
    finally:
        sys.path.remove(tree)
        for k in [k for k in sys.modules if ours(k)]:
            del sys.modules[k]
        sys.modules.update(live)
