"""Which init an encode starts from and which init a decode needs."""
from __future__ import annotations

import os
from pathlib import Path

from nervcore.errors import NervcError
from metanerv.init_file import DEFAULT_INIT, InitFile, known_inits, load_init
from metanerv.model import NeRVConfig


def resolve_init(spec: str | os.PathLike | InitFile | None) -> InitFile | None:
    """``"default"`` (the shipped init), ``"random"``/None (no init), a path, or a loaded init."""
    if isinstance(spec, InitFile):
        return spec
    if spec is None or str(spec) == "random":
        return None
    if str(spec) == "default":
        if not DEFAULT_INIT.is_file():
            raise NervcError(f"the shipped default init {DEFAULT_INIT} is missing; "
                             "reinstall nervc or pass --init random|PATH")
        return load_init(DEFAULT_INIT)
    return load_init(Path(spec))


def random_init_config() -> NeRVConfig:
    """The model shape of an encode without an init: the shipped init's, so that ``--init random``
    differs from the default only in where the weights start (NeRVConfig's defaults otherwise)."""
    if DEFAULT_INIT.is_file():
        try:
            return load_init(DEFAULT_INIT).config
        except NervcError:
            pass
    return NeRVConfig()


def find_init(digest: bytes, extra: list[str | os.PathLike | InitFile] | None = None) -> InitFile:
    """The init whose content digest starts with ``digest`` (a bitstream holds its first 16
    bytes), among ``extra`` and the shipped ones."""
    digest = bytes(digest)
    for given in extra or []:
        if isinstance(given, InitFile) and given.digest[:len(digest)] == digest:
            return given
    paths = [e for e in (extra or []) if not isinstance(e, InitFile)]
    for path in known_inits(paths):
        try:
            init = load_init(path)
        except NervcError:
            continue
        if init.digest[:len(digest)] == digest:
            return init
    raise NervcError(f"this bitstream was encoded from init {digest.hex()[:16]}, which this decoder "
                     "does not have; pass the init file with --init PATH")
