"""Init files: the weights an encoder starts from, in safetensors (never pickle).

The file holds every model tensor (float32) and, in the safetensors metadata, the model
configuration as JSON plus free-form provenance. Its identity is a SHA-256 over the
configuration and the tensors in canonical order, so two files with the same content have the
same digest whatever their names; that digest is written into every ``.nerv`` header and a
decoder refuses a bitstream whose init it does not have.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from nervcore.atomic import atomic_output
from nervcore.errors import NervcError
from metanerv.model import NeRVConfig

INIT_DIR = Path(__file__).resolve().parent / "inits"
DEFAULT_INIT = INIT_DIR / "default.safetensors"
MAX_INIT_BYTES = 256 * 1024 * 1024


@dataclass
class InitFile:
    """A loaded init: configuration, tensors, content digest and where it came from."""

    config: NeRVConfig
    state: dict[str, Tensor]
    digest: bytes
    name: str
    info: dict = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.digest.hex()[:16]


def init_digest(config: NeRVConfig, state: dict[str, Tensor]) -> bytes:
    """SHA-256 of the config JSON and each tensor's name, shape and float32 bytes (sorted)."""
    h = hashlib.sha256()
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].detach().to(torch.float32).contiguous().cpu()
        h.update(name.encode() + b"\0" + json.dumps(list(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.digest()


def save_init(path: str | os.PathLike, config: NeRVConfig, state: dict[str, Tensor],
              info: dict | None = None) -> bytes:
    """Write an init atomically; returns its digest."""
    tensors = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in state.items()}
    digest = init_digest(config, tensors)
    meta = {"format": "nervc-init/1", "config": json.dumps(config.to_dict()),
            "digest": digest.hex(), "info": json.dumps(info or {})}
    p = Path(path)
    with atomic_output(p) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return digest


def load_init(path: str | os.PathLike) -> InitFile:
    """Read and verify an init file; any defect is a NervcError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise NervcError(f"init {p}: no such file")
    if p.stat().st_size > MAX_INIT_BYTES:
        raise NervcError(f"init {p}: larger than {MAX_INIT_BYTES} bytes")
    try:
        from safetensors import safe_open
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise NervcError(f"init {p}: not a valid safetensors init ({str(e)[:120]})") from None
    if meta.get("format") != "nervc-init/1":
        raise NervcError(f"init {p}: not a nervc init file (format {meta.get('format')!r})")
    try:
        cfg = json.loads(meta["config"])
        if not isinstance(cfg, dict):
            raise TypeError(f"expected a JSON object, got {type(cfg).__name__}")
        config = NeRVConfig.from_dict(cfg)
        info = json.loads(meta.get("info", "{}"))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise NervcError(f"init {p}: bad configuration metadata ({e})") from None
    _check_tensors(p, config, state)
    digest = init_digest(config, state)
    if meta.get("digest") and meta["digest"] != digest.hex():
        raise NervcError(f"init {p}: content does not match its recorded digest (corrupted?)")
    return InitFile(config=config, state=state, digest=digest, name=p.name, info=info)


def _check_tensors(p: Path, config: NeRVConfig, state: dict[str, Tensor]) -> None:
    """Every model tensor present, floating point, with the configuration's shape (the grid's
    spatial size is free, it is resampled). Init files are input: without this a crafted or
    truncated one crashed the encoder (load_state_dict) or the decoder (KeyError)."""
    from metanerv.model import NeRV
    try:
        with torch.device("meta"):
            ref = dict(NeRV(config, (1, 1)).named_parameters())
    except (RuntimeError, ValueError, TypeError) as e:
        raise NervcError(f"init {p}: unusable model configuration ({str(e).splitlines()[0][:120]})") from None
    for name, want in ref.items():
        t = state.get(name)
        ok = t is not None and t.is_floating_point() and t.dim() == want.dim()
        if ok and name == "grid":
            ok = tuple(t.shape[:2]) == tuple(want.shape[:2]) and min(t.shape[2:]) >= 1
        elif ok:
            ok = tuple(t.shape) == tuple(want.shape)
        if not ok:
            got = "missing" if t is None else f"{tuple(t.shape)} {t.dtype}"
            raise NervcError(f"init {p}: tensor {name} is {got}, the configuration needs {tuple(want.shape)}")


def known_inits(extra: list[str | os.PathLike] | None = None) -> list[Path]:
    """Init files a decoder may look in: the shipped ones plus any given paths."""
    found = sorted(INIT_DIR.glob("*.safetensors")) if INIT_DIR.is_dir() else []
    return [Path(e) for e in (extra or [])] + found
