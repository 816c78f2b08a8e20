"""The ``.nerv`` container: one reader, one writer, one error type (see SPEC.md).

Also here, and independent of the reader: ``bitstreams.refdecoder`` (a second decoder written
from SPEC.md alone, numpy only) and ``bitstreams.conform`` (the conformance checker). The
reader's names are imported lazily, so ``import bitstreams.refdecoder`` loads neither
``bitstreams.format`` nor torch.
"""
from __future__ import annotations

__all__ = ["BitstreamError", "BitstreamReader", "BitstreamWriter", "GopRecord", "Header", "TensorRecord",
           "write_bitstream"]


def __getattr__(name: str):
    if name in __all__:
        from bitstreams import format as _format

        return getattr(_format, name)
    raise AttributeError(f"module 'bitstreams' has no attribute {name!r}")
