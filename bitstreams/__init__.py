"""The ``.nerv`` container: one reader, one writer, one error type (see SPEC.md)."""
from bitstreams.format import (
    BitstreamError, BitstreamReader, GopRecord, Header, TensorRecord, write_bitstream,
)

__all__ = ["BitstreamError", "BitstreamReader", "GopRecord", "Header", "TensorRecord",
           "write_bitstream"]
