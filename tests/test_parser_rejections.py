"""Every rejection class of the version-3 parser (and of version 2, which it still reads), one
crafted file each.

Each row of ``CASES`` starts from one minimal valid stream (SPEC.md; built byte by byte here,
not with the writer under test), breaks exactly one rule, recomputes every CRC the rule does
not concern, and asserts the exact (stable part of the) message and the stage that refuses it:
``header`` (``BitstreamReader`` refuses the header), ``index`` (``BitstreamReader`` refuses
the section walk), ``gop`` (``read_gop`` refuses the payload) or ``decode`` (the entropy
decoder or the init lookup, reached only by ``codec.decode``). Rejections that need a file
system event (a file that shrinks or vanishes after opening, a sparse 2 GiB file) have their
own tests below, and the ``EntropyError`` checks that no file can reach (the parser refuses
those inputs first) are tested on ``decode_tensors`` directly.

``test_every_message_in_the_source_has_a_row`` reads bitstreams/format.py and
codec/entropy.py and fails when a rejection message appears there that no test here covers.
"""
from __future__ import annotations

import ast
import math
import re
import struct
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

import codec
from bitstreams import BitstreamError, BitstreamReader
from bitstreams import format as fmt
from codec import entropy
from codec.entropy import EntropyError, LaplaceModel, decode_tensors, encode_tensors
from metanerv.model import NeRVConfig, decode_param_shapes
from nervcore.errors import NervcError
from tests.fuzz.harness import message_problem

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fuzz" / "corpus"

# The smallest model: 11 tensors, 50 entries in all (grid 1, mlp 2+1+1+1, conv 9+1, film 2+2,
# head 27+3).
CFG = NeRVConfig(pe_freqs=1, pe_base=1.0, embed_dim=1, grid_channels=1, grid_anchors=1,
                 channels=(1,), strides=(1,))
SIZES = [math.prod(s) for _, s in decode_param_shapes(CFG, (1, 1))]
NAMES = [n for n, _ in decode_param_shapes(CFG, (1, 1))]
CODED = sum(SIZES)
R = 30000
STEP = 0x211E  # f16 bits of ~0.01
F16 = {"nan": 0x7E00, "inf": 0x7C00, "-inf": 0xFC00, "-1": 0xBC00, "-tiny": 0x8001, "-0": 0x8000}


def _levels(seed: int = 0) -> list[np.ndarray]:
    """Levels in {-1, 0, 1} for every tensor, at least one +-1 each (so K = 1)."""
    rng = np.random.default_rng(seed)
    out = []
    for n in SIZES:
        lv = rng.integers(-1, 2, n)
        lv[0] = 1
        out.append(lv.astype(np.int64))
    return out


def _words(levels=None, K: int = 1, marker: bool = False) -> list[int]:
    """The default levels' ANS words: version 3 (no end marker) unless ``marker``."""
    levels = _levels() if levels is None else levels
    return [int(w) for w in encode_tensors(levels, [LaplaceModel(K, R)] * len(levels), marker=marker)]


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def record(step: int = STEP, K: int = 1, r: int = R) -> bytes:
    """A tensor record: step f16 bits, K varint, R u16 when K > 0."""
    return struct.pack("<H", step) + varint(K) + (struct.pack("<H", r) if K else b"")


@dataclass
class Section:
    records: list[bytes] = field(default_factory=lambda: [record() for _ in SIZES])
    words: list[int] = field(default_factory=_words)
    n_words: int | None = None  # declared; None = len(words)
    trailing: bytes = b""  # payload bytes after the words
    kind: int = fmt.SECTION_GOP
    length: int | None = None  # declared; None = the payload's length
    crc: int | None = None  # declared; None = the payload's CRC
    payload: bytes | None = None  # raw payload instead of records/words
    identity: tuple | None = None  # version 4: (gop_index, first_frame, num_frames) first

    def bytes(self) -> bytes:
        p = self.payload
        if p is None:
            n = len(self.words) if self.n_words is None else self.n_words
            p = ((struct.pack("<III", *self.identity) if self.identity is not None else b"")
                 + b"".join(self.records) + struct.pack("<I", n) + struct.pack(f"<{len(self.words)}I", *self.words)
                 + self.trailing)
        length = len(p) if self.length is None else self.length
        crc = zlib.crc32(p) if self.crc is None else self.crc
        return struct.pack("<BII", self.kind, length, crc) + p


@dataclass
class Stream:
    """Every field of a version-3 file (or, with ``major=2``, a version-2 one), raw (SPEC.md
    "Header"), and its sections."""

    magic: bytes = b"NERV"
    major: int = 3
    minor: int = 0
    width: int = 1
    height: int = 1
    frames: int = 1
    fps_num: int = 25
    fps_den: int = 1
    gop: int = 1
    ngops: int | None = None  # None = ceil(frames / gop) (0 when gop is 0)
    init_id: bytes = bytes(16)
    pe_freqs: int = CFG.pe_freqs
    pe_base: float = CFG.pe_base
    embed: int = CFG.embed_dim
    grid_c: int = CFG.grid_channels
    anchors: int = CFG.grid_anchors
    channels: tuple = CFG.channels
    strides: tuple = CFG.strides
    n_blocks: int | None = None  # None = len(channels)
    coded: tuple | None = None  # version >= 3: (coded_width, coded_height); None = (width, height)
    header_extra: bytes = b""  # bytes inside the header after the strides
    hlen: int | None = None  # declared header length; None = the real one
    header_crc: int | None = None  # None = the right CRC
    sections: list[Section] | None = None  # None = one default section per GOP
    tail: bytes = b""  # after the last section

    def header(self) -> bytes:
        nb = len(self.channels) if self.n_blocks is None else self.n_blocks
        ngops = self.ngops if self.ngops is not None else (-(-self.frames // self.gop) if self.gop else 0)
        body = struct.pack("<4sBBHHHIIIII16sBfHHBB", self.magic, self.major, self.minor, 0, self.width,
                           self.height, self.frames, self.fps_num, self.fps_den, self.gop, ngops,
                           self.init_id, self.pe_freqs, self.pe_base, self.embed, self.grid_c,
                           self.anchors, nb)
        if self.major >= 3:
            body += struct.pack("<HH", *(self.coded or (self.width, self.height)))
        body += struct.pack(f"<{len(self.channels)}H", *self.channels)
        body += struct.pack(f"<{len(self.strides)}B", *self.strides) + self.header_extra
        hlen = len(body) if self.hlen is None else self.hlen
        body = body[:6] + struct.pack("<H", hlen) + body[8:]
        crc = zlib.crc32(body[:hlen]) if self.header_crc is None else self.header_crc
        return body + struct.pack("<I", crc)

    def bytes(self) -> bytes:
        ngops = self.ngops if self.ngops is not None else max(1, -(-self.frames // max(self.gop, 1)))
        secs = self.sections if self.sections is not None else [Section() for _ in range(min(ngops, 4))]
        return self.header() + b"".join(s.bytes() for s in secs) + self.tail


def _sec(**kw) -> list[Section]:
    return [Section(**kw)]


def _records(i: int, rec: bytes) -> list[bytes]:
    """The default records with record ``i`` replaced."""
    out = [record() for _ in SIZES]
    out[i] = rec
    return out


def _raw_K(varint_bytes: bytes, R: bytes = b"\0\0") -> bytes:
    """A record whose K is the given raw varint bytes (then R, unless empty)."""
    return struct.pack("<H", STEP) + varint_bytes + R


ALL_ZERO = [record(K=0) for _ in SIZES]
LAST_R_CUT = b"".join(record() for _ in SIZES)[:-1]  # the last record loses its R's last byte
UNTERMINATED = b"".join(record() for _ in SIZES[:-1]) + _raw_K(b"\x80", R=b"")  # K's varint never ends
MAXW = fmt.max_words(CODED)

# (id, stream, stage, message regex)
CASES = [
    # ---- header: identification
    ("bad_magic", Stream(magic=b"NERF"), "header", r"not a \.nerv file \(bad magic\)$"),
    ("version_1", Stream(major=1), "header",
     r"bitstream version 1\.0 \(nervc 0\.1\) is no longer supported: this decoder reads versions 2\.x to 4\.x; "
     r"decode it with nervc 0\.1 or encode the video again$"),
    ("version_1_minor_3", Stream(major=1, minor=3), "header",
     r"bitstream version 1\.3 \(nervc 0\.1\) is no longer supported"),
    ("version_5", Stream(major=5), "header",
     r"bitstream version 5\.0 is not supported \(this decoder reads versions 2\.x to 4\.x\): the file is "
     r"from a newer nervc; upgrade nervc$"),
    ("version_0", Stream(major=0), "header", r"version 0\.0 after the magic is no version nervc ever wrote"),
    ("version_255", Stream(major=255, minor=9), "header", r"version 255\.9 after the magic .*corrupt"),
    # ---- header: length and CRC
    ("header_length_58", Stream(hlen=58), "header", r"bad header length 58$"),
    ("header_length_1025", Stream(hlen=1025), "header", r"bad header length 1025$"),
    ("header_length_mismatch", Stream(header_extra=b"\0"), "header", r"header length 67 does not match 1 blocks$"),
    ("header_length_short_of_blocks", Stream(channels=(1, 1), strides=(1, 1), n_blocks=1), "header",
     r"header length 69 does not match 1 blocks$"),
    ("v2_header_length_of_v3", Stream(major=2, header_extra=b"\0" * 4), "header",
     r"header length 66 does not match 1 blocks$"),
    # ---- header: coded size (version 3)
    ("coded_width_0", Stream(width=8, height=8, coded=(0, 8)), "header",
     r"coded frame size 0x8 out of range \(1x1 to the output's 8x8\)$"),
    ("coded_height_0", Stream(width=8, height=8, coded=(8, 0)), "header", r"coded frame size 8x0 out of range"),
    ("coded_wider_than_output", Stream(width=8, height=8, coded=(9, 8)), "header",
     r"coded frame size 9x8 out of range \(1x1 to the output's 8x8\)$"),
    ("coded_taller_than_output", Stream(width=8, height=8, coded=(8, 65535)), "header",
     r"coded frame size 8x65535 out of range"),
    ("header_crc", Stream(header_crc=0x12345678), "header", r"header CRC mismatch \(file corrupted\)$"),
    # ---- header: frames
    ("width_0", Stream(width=0), "header", r"frame size 0x1 out of range$"),
    ("height_0", Stream(height=0), "header", r"frame size 1x0 out of range$"),
    ("width_16385", Stream(width=16385), "header", r"frame size 16385x1 out of range$"),
    ("frames_0", Stream(frames=0, ngops=0), "header", r"frame count 0 out of range$"),
    ("frames_10M_plus_1", Stream(frames=10_000_001, gop=10_000_001), "header", r"frame count 10000001 out of range$"),
    ("fps_num_0", Stream(fps_num=0), "header", r"frame rate 0/1 out of range$"),
    ("fps_den_0", Stream(fps_den=0), "header", r"frame rate 25/0 out of range$"),
    ("fps_num_1M_plus_1", Stream(fps_num=1_000_001), "header", r"frame rate 1000001/1 out of range$"),
    ("gop_0", Stream(gop=0, ngops=1), "header", r"GOP length 0 out of range$"),
    ("gop_longer_than_video", Stream(gop=2, ngops=1), "header", r"GOP length 2 out of range$"),
    ("gop_count_mismatch", Stream(ngops=2), "header", r"GOP count 2 does not match 1 frames in GOPs of 1$"),
    ("gop_count_0", Stream(ngops=0), "header", r"GOP count 0 does not match 1 frames in GOPs of 1$"),
    ("gop_count_over_1M", Stream(frames=10_000_000, gop=1), "header",
     r"GOP count 10000000 exceeds the limit of 1000000$"),
    # ---- header: model
    ("pe_freqs_0", Stream(pe_freqs=0), "header", r"positional encoding size 0 out of range$"),
    ("pe_freqs_65", Stream(pe_freqs=65), "header", r"positional encoding size 65 out of range$"),
    ("pe_base_nan", Stream(pe_base=float("nan")), "header", r"positional encoding base nan out of range$"),
    ("pe_base_inf", Stream(pe_base=float("inf")), "header", r"positional encoding base inf out of range$"),
    ("pe_base_0.5", Stream(pe_base=0.5), "header", r"positional encoding base 0\.5 out of range$"),
    ("pe_base_4.5", Stream(pe_base=4.5), "header", r"positional encoding base 4\.5 out of range$"),
    ("embed_0", Stream(embed=0), "header", r"embedding width 0 out of range$"),
    ("embed_1025", Stream(embed=1025), "header", r"embedding width 1025 out of range$"),
    ("grid_channels_0", Stream(grid_c=0), "header", r"grid channels 0 out of range$"),
    ("grid_channels_257", Stream(grid_c=257), "header", r"grid channels 257 out of range$"),
    ("anchors_0", Stream(anchors=0), "header", r"grid anchors 0 out of range$"),
    ("anchors_65", Stream(anchors=65), "header", r"grid anchors 65 out of range$"),
    ("blocks_0", Stream(n_blocks=0), "header", r"block count 0 out of range$"),
    ("blocks_9", Stream(channels=(1,) * 9, strides=(1,) * 9), "header", r"block count 9 out of range$"),
    ("channels_0", Stream(channels=(0,)), "header", r"block channels \(0,\) out of range$"),
    ("channels_1025", Stream(channels=(1025,)), "header", r"block channels \(1025,\) out of range$"),
    ("strides_0", Stream(strides=(0,)), "header", r"block strides \(0,\) out of range$"),
    ("strides_9", Stream(strides=(9,)), "header", r"block strides \(9,\) out of range$"),
    ("grid_too_big", Stream(width=4096, height=4096, grid_c=2), "header",
     r"grid of 1x2x4096x4096 values exceeds the limit of 32000000$"),
    ("params_too_many", Stream(embed=1024, channels=(1024,) * 4, strides=(1,) * 4), "header",
     r"model of \d+ parameters exceeds the limit of 32000000$"),
    ("macs_too_many", Stream(channels=(1024, 1024), strides=(1, 1)), "header",
     r"model costs \d+ multiply-accumulates per pixel, more than the limit of 1000000$"),
    # ---- section index (the walk over 9-byte section headers)
    ("gops_cannot_fit", Stream(frames=1000, gop=1, sections=[Section()]), "index",
     r"truncated: 1000 GOPs cannot fit in \d+ bytes$"),
    ("section_missing", Stream(frames=3, gop=1, sections=[Section(), Section()], tail=b"\x01\0\0\0\0"), "index",
     r"truncated: section 2 of 3 missing$"),
    ("section_type_7", Stream(sections=_sec(kind=7)), "index", r"section 0: unknown type 7$"),
    ("section_type_0", Stream(sections=_sec(kind=0)), "index", r"section 0: unknown type 0$"),
    ("section_past_eof", Stream(sections=_sec(length=1000)), "index",
     r"truncated: section 0 declares 1000 bytes, \d+ present$"),
    ("section_too_short", Stream(frames=2, gop=1, sections=[Section(payload=bytes(36)), Section()]), "index",
     r"section 0: too short$"),
    ("trailing_bytes", Stream(tail=b"xyz"), "index", r"3 unexpected trailing bytes$"),
    ("trailing_section", Stream(tail=Section().bytes()), "index", r"\d+ unexpected trailing bytes$"),
    # ---- GOP payload
    ("section_crc", Stream(sections=_sec(crc=0)), "gop", r"section 0: CRC mismatch \(file corrupted\)$"),
    ("step_nan", Stream(sections=_sec(records=_records(0, record(step=F16["nan"])))), "gop",
     r"section 0, tensor grid: bad step nan$"),
    ("step_inf", Stream(sections=_sec(records=_records(3, record(step=F16["inf"])))), "gop",
     r"section 0, tensor mlp\.2\.weight: bad step inf$"),
    ("step_minus_inf", Stream(sections=_sec(records=_records(10, record(step=F16["-inf"])))), "gop",
     r"section 0, tensor head\.bias: bad step -inf$"),
    ("step_negative", Stream(sections=_sec(records=_records(1, record(step=F16["-1"])))), "gop",
     r"section 0, tensor mlp\.0\.weight: bad step -1\.0$"),
    ("step_negative_subnormal", Stream(sections=_sec(records=_records(1, record(step=F16["-tiny"])))), "gop",
     r"section 0, tensor mlp\.0\.weight: bad step -5\.96\d*e-08$"),
    ("step_nan_zero_K", Stream(sections=_sec(records=ALL_ZERO[:4] + [record(step=F16["nan"], K=0)] + ALL_ZERO[5:],
                                             words=[])), "gop", r"section 0, tensor mlp\.2\.bias: bad step nan$"),
    ("K_32768", Stream(sections=_sec(records=_records(2, record(K=32768)))), "gop",
     r"section 0, tensor mlp\.0\.bias: largest level 32768 exceeds 32767$"),
    ("K_2pow32_minus_1", Stream(sections=_sec(records=_records(2, _raw_K(b"\xff\xff\xff\xff\x0f")))),
     "gop", r"section 0, tensor mlp\.0\.bias: largest level 4294967295 exceeds 32767$"),
    ("varint_6_bytes", Stream(sections=_sec(records=_records(0, _raw_K(b"\x81\x80\x80\x80\x80\x00")))),
     "gop", r"section 0: varint longer than 5 bytes$"),
    ("varint_over_32_bits", Stream(sections=_sec(records=_records(0, _raw_K(b"\xff\xff\xff\xff\x1f")))),
     "gop", r"section 0: varint value 8589934591 exceeds 32 bits$"),
    ("record_truncated", Stream(sections=_sec(payload=LAST_R_CUT)), "gop",
     rf"section 0: truncated \(needs 2 bytes at offset {len(LAST_R_CUT) - 1}, 1 left\)$"),
    ("varint_unterminated", Stream(sections=_sec(payload=UNTERMINATED)),
     "gop", r"section 0: truncated \(needs 1 bytes at offset \d+, 0 left\)$"),
    ("n_words_missing", Stream(sections=_sec(payload=b"".join(record() for _ in SIZES) + b"\0\0")), "gop",
     r"section 0: truncated \(needs 4 bytes at offset \d+, 2 left\)$"),
    ("n_words_past_payload", Stream(sections=_sec(n_words=100)), "gop", r"section 0: declares 100 words, \d+ present$"),
    ("n_words_2pow32_minus_1", Stream(sections=_sec(n_words=0xFFFFFFFF)), "gop",
     r"section 0: declares 4294967295 words, \d+ present$"),
    ("n_words_too_many", Stream(sections=_sec(words=_words() + [7] * (MAXW + 1 - len(_words())))), "gop",
     rf"section 0: {MAXW + 1} coded words for {CODED} coded entries$"),
    ("words_with_every_K_0", Stream(sections=_sec(records=ALL_ZERO, words=[1])), "gop",
     r"section 0: 1 coded words for 0 coded entries$"),
    ("payload_trailing_bytes", Stream(sections=_sec(trailing=b"\0\0")), "gop",
     r"section 0: 2 unexpected trailing bytes$"),
    # ---- entropy-coded data (reached by the decoder)
    ("ans_unconsumed", Stream(sections=_sec(words=_words() + [12345])), "decode",
     r"GOP at frame 0: unconsumed entropy-coded data \(corrupted data\)$"),
    ("ans_leading_word", Stream(sections=_sec(words=[12345] + _words())), "decode",
     r"GOP at frame 0: unconsumed entropy-coded data \(corrupted data\)$"),
    ("ans_truncated", Stream(sections=_sec(words=_words()[:-1])), "decode",
     r"GOP at frame 0: unconsumed entropy-coded data \(corrupted data\)$"),
    ("ans_trailing_zero_word", Stream(sections=_sec(words=_words() + [0])), "decode",
     r"GOP at frame 0: corrupted entropy-coded data \(ValueError\)$"),
    ("ans_wrong_R", Stream(sections=_sec(records=_records(10, record(r=R + 20000)))), "decode",
     r"GOP at frame 0: unconsumed entropy-coded data \(corrupted data\)$"),
    ("ans_second_gop", Stream(frames=2, gop=1, sections=[Section(), Section(words=_words() + [5])]), "decode",
     r"GOP at frame 1: unconsumed entropy-coded data \(corrupted data\)$"),
    # ---- version 4: sections that know their place, streams that end with the marker
    ("v4_section_of_another_gop", Stream(major=4, frames=2, gop=1, sections=[
        Section(identity=(1, 1, 1), words=_words(marker=True)), Section(identity=(0, 0, 1), words=_words(marker=True))]),
     "gop", r"section 0 holds GOP 1: GOP sections swapped, lost or repeated$"),
    ("v4_section_other_frames", Stream(major=4, frames=3, gop=2, sections=[
        Section(identity=(0, 0, 1), words=_words(marker=True)), Section(identity=(1, 2, 1), words=_words(marker=True))]),
     "gop", r"section 0 declares frames 0\.\.0, the header puts frames 0\.\.1 there$"),
    ("v4_no_words", Stream(major=4, sections=_sec(identity=(0, 0, 1), records=ALL_ZERO, words=[],
                                                  trailing=bytes(4))), "gop",
     r"section 0: 0 coded words for 0 coded entries and the end marker$"),
    ("v4_without_marker", Stream(major=4, sections=_sec(identity=(0, 0, 1))), "decode",
     r"GOP at frame 0: the entropy-coded data ends early or late \(end marker not found\)$"),
    ("v4_marker_word_dropped", Stream(major=4, sections=_sec(identity=(0, 0, 1), words=_words(marker=True)[1:])),
     "decode", r"GOP at frame 0: the entropy-coded data ends early or late"),
    ("version_200", Stream(major=200), "header",
     r"not a \.nerv file this nervc can read: version 200\.0 after the magic is no version nervc ever wrote "
     r"\(the file is corrupt\)$"),
    # ---- init lookup
    ("init_unknown", Stream(init_id=bytes.fromhex("0123456789abcdef0123456789abcdef")), "decode",
     r"encoded with init 0123456789abcdef, which this decoder does not have \(init files given: none given\); "
     r"pass that init file with --init PATH$"),
]


def _write(tmp_path: Path, data: bytes, name: str = "case.nerv") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _assert_message(err: BaseException, path: Path, pattern: str) -> str:
    msg = str(err)
    assert isinstance(err, NervcError), repr(err)
    assert message_problem(msg) is None, msg
    assert msg.startswith(f"{path}: "), msg  # every message names the file
    assert re.search(pattern, msg), f"{msg!r} !~ {pattern!r}"
    return msg


def test_minimal_stream_is_valid(tmp_path):
    """The base every row breaks: a 1x1 frame, one GOP, 11 tensors all with K = 1."""
    p = _write(tmp_path, Stream().bytes())
    r = BitstreamReader(p)
    g = r.read_gop(0)
    assert [t.K for t in g.tensors] == [1] * len(SIZES) and len(g.words) >= 1
    assert codec.decode(p, None, device="cpu").frames.shape == (1, 1, 1, 3)
    # and the variants the rows rely on are valid too
    for name, s in [("zero", Stream(sections=_sec(records=ALL_ZERO, words=[]))),
                    ("3gops", Stream(frames=3, gop=1)),
                    ("version2", Stream(major=2)),  # still read: its coded size is its output size
                    ("version4", Stream(major=4, sections=_sec(identity=(0, 0, 1), words=_words(marker=True)))),
                    ("coded_smaller", Stream(width=40, height=24, coded=(5, 3))),
                    ("minor", Stream(minor=7)),  # minor versions are ignored
                    ("step-0", Stream(sections=_sec(records=_records(0, record(step=F16["-0"]))))),
                    ("maxK", None),
                    # no words with K > 0: every level is -K (the coder's state never left 0)
                    ("no-words", Stream(sections=_sec(words=_words([np.full(n, -1, np.int64) for n in SIZES])))),
                    ("overlong", Stream(sections=_sec(records=_records(0, struct.pack("<H", STEP) + b"\x81\x80\x00"
                                                                       + struct.pack("<H", R)))))]:
        if name == "maxK":  # K = 32767 (R at its top) in the last tensor only, the rest K = 0
            lv = [np.zeros(n, np.int64) for n in SIZES[:-1]] + [np.array([fmt.MAX_LEVEL, 0, -fmt.MAX_LEVEL])]
            ms = [LaplaceModel(0, 0)] * (len(SIZES) - 1) + [LaplaceModel(fmt.MAX_LEVEL, 65535)]
            s = Stream(sections=_sec(records=ALL_ZERO[:-1] + [record(K=fmt.MAX_LEVEL, r=65535)],
                                     words=[int(w) for w in encode_tensors(lv, ms, marker=False)]))
        q = _write(tmp_path, s.bytes(), f"{name}.nerv")
        out = codec.decode(q, None, device="cpu")
        assert out.frames.shape == (s.frames, s.height, s.width, 3), name


@pytest.mark.parametrize("name,stream,stage,pattern", CASES, ids=[c[0] for c in CASES])
def test_rejection(tmp_path, name, stream, stage, pattern):
    p = _write(tmp_path, stream.bytes())
    if stage in ("header", "index"):
        with pytest.raises(BitstreamError) as ei:
            BitstreamReader(p)
    else:
        r = BitstreamReader(p)
        if stage == "gop":
            with pytest.raises(BitstreamError) as ei:
                r.read_gop(len(r.sections) - 1 if name == "ans_second_gop" else 0)
        else:
            for i in range(len(r.sections)):
                r.read_gop(i)  # the container is fine: only the decoder can tell
            with pytest.raises(NervcError) as ei:
                codec.decode(p, None, device="cpu")
    _assert_message(ei.value, p, pattern)
    if stage != "decode":  # the decoder says the same, and no frame is made
        with pytest.raises(BitstreamError) as e2:
            codec.decode(p, None, device="cpu")
        assert str(e2.value) == str(ei.value)


def test_rows_break_only_their_rule(tmp_path):
    """Each header row differs from the valid base in the fields it names and nothing else the
    parser reads first: the base itself passes every check (see test_minimal_stream_is_valid),
    and a stream rebuilt from a row with that field restored decodes again."""
    fixes = {"width_0": dict(width=1), "pe_base_nan": dict(pe_base=1.0), "section_type_7": dict(sections=None),
             "header_crc": dict(header_crc=None), "trailing_bytes": dict(tail=b""), "blocks_0": dict(n_blocks=None)}
    rows = {c[0]: c[1] for c in CASES}
    for name, fix in fixes.items():
        p = _write(tmp_path, replace(rows[name], **fix).bytes(), f"{name}.nerv")
        assert codec.decode(p, None, device="cpu").frames.shape == (1, 1, 1, 3), name


# ------------------------------------------------------------------ rules that need the file system

def test_short_file(tmp_path):
    for data in (b"N", b"NERV\x02", b"NERV\x02\x00\x3e"):
        p = _write(tmp_path, data)
        with pytest.raises(BitstreamError) as ei:
            BitstreamReader(p)
        _assert_message(ei.value, p, r"not a \.nerv file \(shorter than its magic\)$")


def test_truncated_header(tmp_path):
    data = Stream().bytes()
    for cut in (8, 30, 62, 65):  # the header is 62 bytes + 4 of CRC
        p = _write(tmp_path, data[:cut])
        with pytest.raises(BitstreamError) as ei:
            BitstreamReader(p)
        _assert_message(ei.value, p, r"truncated header$")


@pytest.mark.parametrize("kind,pattern", [("missing", r"no such file$"), ("dir", r"not a file$"),
                                          ("fifo", r"not a file$"), ("empty", r"empty file, not a \.nerv bitstream$"),
                                          ("huge", r"larger than 2147483648 bytes$")])
def test_file_level(tmp_path, kind, pattern):
    import os
    p = tmp_path / "x.nerv"
    if kind == "dir":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "huge":  # sparse: no disk space used
        with open(p, "wb") as f:
            f.write(Stream().bytes())
            f.truncate(fmt.MAX_FILE_BYTES + 1)
    with pytest.raises(BitstreamError) as ei:
        BitstreamReader(p)
    _assert_message(ei.value, p, pattern)


def test_unreadable_file(tmp_path, monkeypatch):
    p = _write(tmp_path, Stream().bytes())

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fmt, "open", denied, raising=False)
    with pytest.raises(BitstreamError) as ei:
        BitstreamReader(p)
    _assert_message(ei.value, p, r"cannot read \(Permission denied\)$")


def test_file_changed_after_opening(tmp_path):
    """The index is built at open; a payload read later that comes back short, or a file that
    vanished, is refused as such."""
    p = _write(tmp_path, Stream().bytes())
    r = BitstreamReader(p)
    with open(p, "r+b") as f:
        f.truncate(p.stat().st_size - 3)
    with pytest.raises(BitstreamError) as ei:
        r.read_gop(0)
    _assert_message(ei.value, p, r"section 0: truncated$")
    p.unlink()
    with pytest.raises(BitstreamError) as ei:
        r.read_gop(0)
    _assert_message(ei.value, p, r"cannot read \(No such file or directory\)$")


def test_init_with_another_configuration(tmp_path):
    """The header names an init the decoder has, but the init is for another model."""
    from metanerv.init_file import load_init
    a = CORPUS / "init_tinyA.safetensors"
    p = _write(tmp_path, Stream(init_id=load_init(a).digest[:16]).bytes())
    with pytest.raises(NervcError) as ei:
        codec.decode(p, None, device="cpu", init=[str(a)])
    _assert_message(ei.value, p, r"init init_tinyA\.safetensors has a different model configuration$")
    with pytest.raises(NervcError) as ei:  # not given: named by id, with what was given
        codec.decode(p, None, device="cpu", init=[str(CORPUS / "init_tinyB.safetensors")])
    _assert_message(ei.value, p, rf"encoded with init {load_init(a).short_id}, which this decoder does not "
                                 r"have \(init files given: .*init_tinyB\.safetensors \(init [0-9a-f]{16}\)\)")


# ------------------------------------------------------------------ EntropyError, directly

def test_entropy_rejections_the_parser_shadows():
    """decode_tensors' own checks, which a file cannot reach because the parser refuses the
    same input first (words with every K = 0, uint32 words, K <= 32767, R < 65536)."""
    m = [LaplaceModel(1, R)]
    with pytest.raises(EntropyError, match=r"^malformed coded words$"):
        decode_tensors(np.ones((2, 2), np.uint32), m, [3])
    with pytest.raises(EntropyError, match=r"^malformed coded words$"):
        decode_tensors(np.ones(2, np.float64), m, [3])
    with pytest.raises(EntropyError, match=r"^coded words present but every tensor is zero$"):
        decode_tensors(np.ones(1, np.uint32), [LaplaceModel(0, 0)], [3], marker=False)  # version 3
    with pytest.raises(EntropyError, match=r"^entropy model R=65536, K=1 out of range$"):
        entropy.laplace_counts(65536, 1)
    with pytest.raises(EntropyError, match=r"^entropy model R=5, K=32768 out of range$"):
        entropy.laplace_counts(5, 32768)
    with pytest.raises(EntropyError, match=r"^entropy model R=-1, K=1 out of range$"):
        decode_tensors(np.ones(1, np.uint32), [LaplaceModel(1, -1)], [3], marker=False)


def test_entropy_symbol_outside_model_and_panics(monkeypatch):
    """What constriction never returns on well-formed tables, still checked: a symbol outside the
    table and a Rust panic (pyo3's PanicException derives from BaseException)."""
    import constriction
    words = np.array(_words(), np.uint32)

    class FakeCoder:
        def __init__(self, symbols=None, exc=None):
            self.symbols, self.exc = symbols, exc

        def __call__(self, *a, **k):
            if self.exc is not None:
                raise self.exc
            return self

        def decode(self, model, n):
            return np.full(n, self.symbols, np.int32)

        def is_empty(self):
            return True

    class PanicException(BaseException):
        pass

    for bad in (3, -1):  # K = 1: symbols 0..2
        monkeypatch.setattr(constriction.stream.stack, "AnsCoder", FakeCoder(symbols=bad))
        with pytest.raises(EntropyError, match=r"^decoded symbol outside its model \(corrupted data\)$"):
            decode_tensors(words, [LaplaceModel(1, R)] * len(SIZES), SIZES)
    monkeypatch.setattr(constriction.stream.stack, "AnsCoder", FakeCoder(exc=PanicException("overflow")))
    with pytest.raises(EntropyError, match=r"^corrupted entropy-coded data \(PanicException\)$"):
        decode_tensors(words, [LaplaceModel(1, R)] * len(SIZES), SIZES)
    monkeypatch.setattr(constriction.stream.stack, "AnsCoder", FakeCoder(exc=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        decode_tensors(words, [LaplaceModel(1, R)] * len(SIZES), SIZES)


def test_ans_overrun_decodes_as_minus_K():
    """Not a rejection: documents a limit of the one check the format has on the words (the
    coder must end empty). constriction's exhausted AnsCoder keeps decoding symbol 0 (level -K)
    and stays empty, so a stream asked for more symbols than it holds is *accepted*, padded
    with -K. A file cannot ask for more symbols than its header's shapes, so this only matters
    for a stream whose words were cut exactly at a symbol boundary or dropped altogether:
    ``ans_truncated`` above is caught because the cut leaves state behind. If the decoder ever counts symbols against the
    words, turn this into a CASES row. Version 4 does: its end marker refuses the same overrun."""
    lv = _levels()
    ms = [LaplaceModel(1, R)] * len(lv)
    words = encode_tensors(lv, ms, marker=False)
    out = decode_tensors(words, ms, SIZES[:-1] + [SIZES[-1] + 5], marker=False)
    assert np.array_equal(out[-1][:SIZES[-1]], lv[-1]) and (out[-1][SIZES[-1]:] == -1).all()
    # the extreme case, valid since SPEC.md allows n_words = 0 with coded tensors: no words at
    # all decode as every level -K, whatever the levels were before the words were dropped
    assert all((o == -1).all() for o in decode_tensors(np.zeros(0, np.uint32), ms, SIZES, marker=False))
    words = encode_tensors(lv, ms)  # version 4
    for sizes, cut in ((SIZES[:-1] + [SIZES[-1] + 5], words), (SIZES, np.zeros(0, np.uint32))):
        with pytest.raises(EntropyError, match="ends early or late"):
            decode_tensors(cut, ms, sizes)


# ------------------------------------------------------------------ every message has a row

def _messages(path: Path, names: set[str]) -> list[tuple[str, ...]]:
    """The constant text of every message passed to ``names(...)`` calls in ``path``: per
    message, its pieces between f-string placeholders that are at least 5 characters long."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        fname = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
        if fname not in names or not node.args:
            continue
        arg = node.args[-1] if fname == "_check" else node.args[0]
        parts = [n.value for n in ast.walk(arg) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        pieces = tuple(x for x in (s.strip(" :;,()") for p in parts for s in re.split(r"[{}]", p)) if len(x) >= 5)
        if pieces:
            out.append(pieces)
    return out


def test_every_message_in_the_source_has_a_row():
    here = Path(__file__).read_text()
    # un-escape the regexes of this file so a literal message fragment can be found in them
    text = re.sub(r"\\(.)", r"\1", here + "\n".join(c[3] for c in CASES))
    missing = []
    for path, names in ((REPO / "bitstreams" / "format.py", {"_check", "BitstreamError"}),
                        (REPO / "codec" / "entropy.py", {"EntropyError"})):
        for pieces in _messages(path, names):
            if not all(x in text for x in pieces):
                missing.append(f"{path.name}: {' ... '.join(pieces)!r}")
    # messages of the writer and of fit_laplace are not parser rejections
    ignore = ("is a directory", "cannot write", "exceeds the format's limit")
    missing = [m for m in missing if not any(i in m for i in ignore)]
    assert not missing, "rejections without a test in this file: " + "; ".join(missing)
