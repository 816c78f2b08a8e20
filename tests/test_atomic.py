"""nervcore.atomic: every writer replaces its target whole, with open()'s permissions."""
from __future__ import annotations

import os
import re
import stat

import pytest
import torch

from nervcore.atomic import atomic_output, write_bytes_atomic
from metanerv.checkpoint import load_checkpoint, save_checkpoint
from metanerv.init_file import load_init, save_init
from metanerv.model import NeRVConfig, build_model


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_write_bytes_replaces_whole_file_with_open_permissions(tmp_path, umask022):
    p = tmp_path / "x.bin"
    p.write_bytes(b"old content that is longer")
    assert write_bytes_atomic(p, b"new") == 3
    assert p.read_bytes() == b"new"
    assert _mode(p) == 0o644
    assert [q.name for q in tmp_path.iterdir()] == ["x.bin"]


def test_exception_keeps_old_file_and_removes_temporary(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(p) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert p.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["x.bin"]


def test_directory_output_replaces_only_a_folder_of_its_own_files(tmp_path, umask022):
    own = re.compile(r"f\d{5}\.png")
    p = tmp_path / "frames"
    p.mkdir()
    (p / "f00002.png").write_bytes(b"stale")
    (p / "notes.txt").write_bytes(b"the user's")
    with pytest.raises(FileExistsError):
        with atomic_output(p, directory=True, own_files=own) as tmp:
            (tmp / "f00001.png").write_bytes(b"png")
    assert sorted(q.name for q in p.iterdir()) == ["f00002.png", "notes.txt"]
    assert [q.name for q in tmp_path.iterdir()] == ["frames"]
    (p / "notes.txt").unlink()
    with atomic_output(p, directory=True, own_files=own) as tmp:
        (tmp / "f00001.png").write_bytes(b"png")
    assert sorted(q.name for q in p.iterdir()) == ["f00001.png"]
    assert _mode(p) == 0o755
    with pytest.raises(RuntimeError):
        with atomic_output(p, directory=True, own_files=own) as tmp:
            (tmp / "f00001.png").write_bytes(b"other")
            raise RuntimeError("boom")
    assert (p / "f00001.png").read_bytes() == b"png"
    assert [q.name for q in tmp_path.iterdir()] == ["frames"]


def test_init_and_checkpoint_files_get_open_permissions(tmp_path, umask022):
    cfg = NeRVConfig()
    state = {k: v.detach() for k, v in build_model(cfg, (2, 2)).state_dict().items()}
    init_path = tmp_path / "init.safetensors"
    digest = save_init(init_path, cfg, state)
    assert _mode(init_path) == 0o644  # was 0600 from mkstemp before nervcore.atomic
    assert load_init(init_path).digest == digest
    ckpt = tmp_path / "run.ckpt"
    save_checkpoint(ckpt, {"w": torch.ones(3)}, {"step": 7})
    assert _mode(ckpt) == 0o644
    tensors, state_back = load_checkpoint(ckpt)
    assert state_back["step"] == 7 and torch.equal(tensors["w"], torch.ones(3))
