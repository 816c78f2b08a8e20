"""nervc codec: ``encode`` a video into a ``.nerv`` file and ``decode`` it back."""
from nervcore.errors import NervcError
from codec.ladder import DEFAULT_QUALITY, QUALITY_LEVELS

__all__ = ["DEFAULT_QUALITY", "DecodeResult", "EncodeOptions", "EncodeResult", "NervcError", "QUALITY_LEVELS",
           "decode", "encode", "encode_ladder"]

_LAZY = {"decode": "codec.decoder", "DecodeResult": "codec.decoder",
         "encode": "codec.encoder", "EncodeResult": "codec.encoder",
         "encode_ladder": "codec.encoder", "EncodeOptions": "codec.options"}


def __getattr__(name: str):
    # Imported on first use: ``bitstreams`` needs ``nervcore.errors``, and importing the decoder
    # here eagerly made ``import bitstreams`` (before ``codec``) fail with a circular import.
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'codec' has no attribute {name!r}")
