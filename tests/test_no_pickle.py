"""No code from data: nothing in the repository may deserialize with pickle or evaluate data.

Every ``.py`` file of the repository is parsed (not grepped, so strings and comments do not
count) and every call is checked against the patterns that turn a data file into code:
``pickle``/``cPickle``/``dill``/``joblib``/``marshal``/``shelve`` loads and ``Unpickler``,
``torch.load`` without ``weights_only=True``, ``numpy.load`` with ``allow_pickle`` anything but
``False``, ``yaml.load`` without a safe loader, and the builtins ``eval``/``exec``/``compile``/
``__import__`` (``model.eval()`` and other methods named ``eval`` are fine).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", "__pycache__", "build", "dist", ".venv", "venv", "node_modules", ".hypothesis",
             ".eggs", "site-packages"}
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}
PICKLE_CALLS = {"load", "loads", "Unpickler", "open"}
BUILTINS = {"eval", "exec", "compile", "__import__"}


def _name(node: ast.AST) -> str:
    """Dotted name of a call target: ``torch.load``, ``np.load``, ``eval``..."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
        if k.arg is None:  # **kwargs: cannot prove anything
            return ast.Name(id="<kwargs>")
    return None


def _is_const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def violations(source: str, filename: str = "<src>") -> list[str]:
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> module/function it really is
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if not name:
            continue
        head, _, rest = name.partition(".")
        full = aliases.get(head, head) + ("." + rest if rest else "")
        mod, _, fn = full.rpartition(".")
        where = f"{filename}:{node.lineno}: {name}("
        if mod.split(".")[0] in PICKLERS and fn in PICKLE_CALLS:
            out.append(where + " deserializes with " + mod)
        elif full == "torch.load":
            if not _is_const(_kw(node, "weights_only"), True):
                out.append(where + " without weights_only=True")
        elif full in ("numpy.load", "np.load"):
            ap = _kw(node, "allow_pickle")
            if ap is not None and not _is_const(ap, False):
                out.append(where + " with allow_pickle")
        elif full == "yaml.load":
            loader = _kw(node, "Loader")
            if loader is None or "Safe" not in ast.unparse(loader):
                out.append(where + " without a SafeLoader")
        elif full in BUILTINS or full in {f"builtins.{b}" for b in BUILTINS}:
            out.append(where + " evaluates code")
    return out


def _sources() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.py") if not (set(p.relative_to(REPO).parts[:-1]) & SKIP_DIRS))


def test_detector_catches_every_pattern():
    bad = """
import pickle, torch, numpy as np, joblib, yaml
from pickle import loads as L
import marshal as m
pickle.load(f); L(b); m.loads(b); joblib.load(p)
torch.load(p); torch.load(p, weights_only=False); torch.load(p, **kw)
np.load(p, allow_pickle=True); np.load(p, allow_pickle=flag)
yaml.load(s); eval(s); exec(s); compile(s, 'x', 'exec'); __import__(s)
"""
    assert len(violations(bad)) == 14, violations(bad)
    ok = """
import torch, numpy as np, yaml
model.eval(); self.exec(x); torch.load(p, weights_only=True); np.load(p)
np.load(p, allow_pickle=False); yaml.load(s, Loader=yaml.SafeLoader); s = "pickle.loads(x)"
# eval(data)
"""
    assert violations(ok) == []


def test_repository_has_no_code_from_data():
    files = _sources()
    assert len(files) > 20, "found suspiciously few sources"
    found = []
    for p in files:
        try:
            found += violations(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)))
        except SyntaxError as e:
            pytest.fail(f"{p.relative_to(REPO)} does not parse: {e}")
    assert not found, "\n".join(found)
