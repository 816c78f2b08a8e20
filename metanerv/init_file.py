"""Init files: the weights an encoder starts from, in safetensors (never pickle).

The file holds every model tensor (float32) and, in the safetensors metadata, the model
configuration as JSON plus free-form provenance. Its identity is a SHA-256 over the
configuration and the tensors in canonical order, so two files with the same content have the
same digest whatever their names; that digest is written into every ``.nerv`` header and a
decoder refuses a bitstream whose init it does not have.

An init meta-trained with Meta-SGD may also carry the step sizes it learned, one per parameter
tensor, as JSON under the metadata key ``"metasgd"``::

    {"version": 1, "granularity": "tensor", "log_lrs": {"grid": -5.2, ...},
     "inner_opt": "sgd", "inner_steps": 8}

They are encoder-side hints, not weights: a decoder never needs them, so they are outside the
digest (a file with them has the id of the same weights without them, and the digest of files
without them is unchanged) and they are metadata rather than tensors, because every reader
before them hashed and strictly loaded every tensor of the file and would have called a file with
extra tensors corrupted. ``lr_scales`` turns them into per-tensor learning-rate multipliers.

How the encoder is to use them (not wired in yet; codec/finetune.py owns that): give each decode
tensor its own Adam parameter group with ``lr = peak_lr * scale[name]`` under the same cosine
schedule, so the overall step size stays the encoder's while the init's learned preferences
(e.g. a fast grid, slow head) carry over. The raw learned values are step sizes of the inner
optimizer named by ``inner_opt`` for ``inner_steps`` steps; only their ratios are meant to
transfer to hundreds of Adam steps, hence multipliers relative to their (geometric) mean, and a
clamp (``lr_scales(..., clamp=(0.1, 10))``) bounds what a few meta-steps can impose.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from nervcore.atomic import atomic_output
from nervcore.errors import NervcError
from metanerv.model import NeRVConfig, decode_param_shapes

INIT_DIR = Path(__file__).resolve().parent / "inits"
DEFAULT_INIT = INIT_DIR / "default.safetensors"
MAX_INIT_BYTES = 256 * 1024 * 1024
METASGD_KEY = "metasgd"
METASGD_VERSION = 1
MAX_ABS_LOG_LR = 50.0  # exp(+-50) is far outside any sane step size, and still finite


@dataclass
class InitFile:
    """A loaded init: configuration, tensors, content digest and where it came from."""

    config: NeRVConfig
    state: dict[str, Tensor]
    digest: bytes
    name: str
    info: dict = field(default_factory=dict)
    metasgd: dict | None = None  # {"log_lrs": {tensor: float}, "inner_opt", "inner_steps", ...}

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
              info: dict | None = None, metasgd: dict | None = None) -> bytes:
    """Write an init atomically; returns its digest.

    ``metasgd`` (optional): ``{"log_lrs": {tensor name: scalar tensor or float}, ...}`` plus any
    JSON-able details (``inner_opt``, ``inner_steps``): learned Meta-SGD step sizes to carry.
    """
    tensors = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in state.items()}
    digest = init_digest(config, tensors)
    meta = {"format": "nervc-init/1", "config": json.dumps(config.to_dict()),
            "digest": digest.hex(), "info": json.dumps(info or {})}
    if metasgd is not None:
        extra = {k: v for k, v in metasgd.items() if k != "log_lrs"}
        logs = {}
        for name, v in metasgd["log_lrs"].items():
            t = torch.as_tensor(v).detach()
            if t.numel() != 1:
                raise ValueError(f"Meta-SGD step size of {name}: one value per tensor, got shape {tuple(t.shape)}")
            logs[name] = float(t.reshape(()).to(torch.float64))
        record = {"version": METASGD_VERSION, "granularity": "tensor", **extra, "log_lrs": logs}
        _check_metasgd(Path(path), config, state, record)
        meta[METASGD_KEY] = json.dumps(record)
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
    metasgd = None
    if METASGD_KEY in meta:
        try:
            metasgd = json.loads(meta[METASGD_KEY])
        except ValueError as e:
            raise NervcError(f"init {p}: bad Meta-SGD metadata ({str(e)[:120]})") from None
        _check_metasgd(p, config, state, metasgd)
    return InitFile(config=config, state=state, digest=digest, name=p.name, info=info,
                    metasgd=metasgd)


def _check_metasgd(p: Path, config: NeRVConfig, state: dict[str, Tensor], record) -> None:
    """Learned step sizes: a version this code reads, model tensor names, finite bounded logs."""
    if not isinstance(record, dict) or record.get("version") != METASGD_VERSION:
        raise NervcError(f"init {p}: Meta-SGD metadata of an unknown version")
    if record.get("granularity") != "tensor":
        raise NervcError(f"init {p}: Meta-SGD step sizes of granularity "
                         f"{record.get('granularity')!r}; this version reads 'tensor'")
    logs = record.get("log_lrs")
    if not isinstance(logs, dict) or not logs:
        raise NervcError(f"init {p}: Meta-SGD metadata without step sizes")
    for name, v in logs.items():
        if name not in state:
            raise NervcError(f"init {p}: Meta-SGD step size for {name!r}, which is not a tensor of the model")
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or abs(v) > MAX_ABS_LOG_LR):
            raise NervcError(f"init {p}: Meta-SGD log step size of {name} is {v!r}, "
                             f"not a finite number within +-{MAX_ABS_LOG_LR:g}")


FIT_LR_CLAMP = (0.1, 10.0)  # bounds on the multipliers where a fit uses them (encoder, adaptation harness, coded meta-training)


def lr_scales(init: InitFile, clamp: tuple[float, float] | None = None) -> dict[str, float] | None:
    """Per-tensor learning-rate multipliers from an init's learned Meta-SGD step sizes.

    For every decode tensor (those the encoder fine-tunes), ``exp(log_lr)`` divided by the
    geometric mean over those tensors, so the multipliers' geometric mean is 1 and an encoder
    multiplying its peak learning rate by them keeps its overall step size. Tensors without a
    learned value get 1. ``clamp=(lo, hi)`` bounds the multipliers (after normalising).
    None when the init carries no step sizes.
    """
    if not init.metasgd:
        return None
    logs = init.metasgd["log_lrs"]
    names = [n for n, _ in decode_param_shapes(init.config, (1, 1))]
    known = [logs[n] for n in names if n in logs]
    if not known:
        return None
    centre = sum(known) / len(known)
    out = {}
    for n in names:
        scale = math.exp(logs[n] - centre) if n in logs else 1.0
        if clamp is not None:
            scale = min(max(scale, clamp[0]), clamp[1])
        out[n] = scale
    return out


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
