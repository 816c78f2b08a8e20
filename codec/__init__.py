"""nervc codec: ``encode`` a video into a ``.nerv`` file and ``decode`` it back."""
from codec.decoder import DecodeResult, decode
from codec.encoder import EncodeResult, encode
from codec.errors import NervcError
from codec.ladder import DEFAULT_QUALITY, QUALITY_LEVELS

__all__ = ["DEFAULT_QUALITY", "DecodeResult", "EncodeResult", "NervcError", "QUALITY_LEVELS",
           "decode", "encode"]
