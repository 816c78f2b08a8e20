"""Meta-training checkpoints: one safetensors file, written atomically, no pickle.

Tensors (meta-parameters, learned step sizes, the outer optimizer's moment buffers) are
safetensors entries; everything else (step, elapsed seconds, options, the optimizer's scalar
state and parameter groups) is JSON stored in the file's metadata under ``"state"``. Writing
to a temporary name and ``os.replace``-ing it means an interrupted run leaves either the old
checkpoint or the new one, never a torn file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from nervcore.atomic import atomic_output
from nervcore.errors import NervcError

FORMAT = "nervc-metatrain-ckpt/1"
_OPT = "optim."


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, Tensor], state: dict) -> None:
    """Atomically write ``tensors`` plus the JSON-serialisable ``state``."""
    p = Path(path)
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {"format": FORMAT, "state": json.dumps(state)}
    with atomic_output(p) as tmp:
        save_file(flat, str(tmp), metadata=meta)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict]:
    """Read a checkpoint written by ``save_checkpoint``; defects are NervcErrors."""
    p = Path(path)
    if not p.is_file():
        raise NervcError(f"checkpoint {p}: no such file")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(p))
        state = json.loads(meta.get("state", "null"))
    except (SafetensorError, OSError, ValueError) as e:
        raise NervcError(f"checkpoint {p}: unreadable ({str(e)[:120]})") from None
    if meta.get("format") != FORMAT or not isinstance(state, dict):
        raise NervcError(f"checkpoint {p}: not a meta-training checkpoint")
    return tensors, state


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Split an optimizer's state dict into tensors (safetensors) and a JSON-able rest."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, Tensor):
                tensors[f"{_OPT}{idx}.{key}"] = val
            else:
                scalars.setdefault(str(idx), {})[key] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict) -> None:
    """Restore what ``optimizer_to_flat`` produced (inverse of it)."""
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if not name.startswith(_OPT):
            continue
        idx, key = name[len(_OPT):].split(".", 1)
        state.setdefault(int(idx), {})[key] = val
    for idx, st in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(st)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()}
              for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
