"""Make the ``.nerv`` conformance streams (this needs the encoder) and judge this codec's decoder.

    python -m codec.conformance make DIR      # regenerate (a new format version or init)
    python -m codec.conformance check [DIR]   # judge codec.decoder against the streams

The streams are crops of the bundled clip encoded by :func:`codec.encode`, plus two written
record by record to reach what the encoder never produces (every tensor ``K = 0`` with no
ANS words; ``K = 32767`` with ``R`` at both ends of its range), and invalid streams derived from
them. Their expectations (``NAME.json``) and frames (``NAME.rgb``) come from the *reference*
decoder (:mod:`bitstreams.refdecoder`, written from SPEC.md alone), never from the decoder
being checked. The checker itself is :mod:`bitstreams.conform` (``python -m bitstreams.conform
check`` judges the reference decoder).
"""
from __future__ import annotations

import argparse
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from bitstreams import conform
from nervcore.errors import NervcError

HERE = conform.HERE
DEMO_CLIP = Path(__file__).resolve().parent / "data" / "carphone_qcif_120f.mp4"
KMAX_TENSOR = "blocks.0.conv.weight"


@dataclass(frozen=True)
class StreamSpec:
    """An encoded conformance stream: a crop of the bundled clip and the encoder settings."""

    name: str
    what: str
    frames: tuple[int, int]  # [a, b) of the bundled clip
    crop: tuple[int, int, int, int]  # top, left, height, width
    fps: Fraction
    encode: dict = field(default_factory=dict)


STREAMS = (
    StreamSpec("absolute_odd_3gop",
               "no init (every tensor absolute); odd 37x29 frames padded to 48x32 and cropped; "
               "9 frames in GOPs of 4 + 4 + 1 (a one-frame GOP: t = 0); 30000/1001 fps; quality 3",
               (10, 19), (40, 60, 29, 37), Fraction(30000, 1001),
               dict(init="random", gop=4, steps=30, quality=3)),
    StreamSpec("delta_q6",
               "the shipped init (delta-coded; its 8x8 grid resized to 3x4); 64x48; 5 frames; "
               "15 fps; quality 6, 40 steps", (0, 5), (48, 56, 48, 64), Fraction(15),
               dict(init="default", steps=40, quality=6)),
    StreamSpec("delta_lam_huge_1fps",
               "the shipped init with a huge rate weight (lam = 1e4): tensors with K = 0 (all "
               "levels zero, no R, no symbols) beside K = 1 ones; 48x32; 3 frames; 1 fps",
               (60, 63), (56, 64, 32, 48), Fraction(1),
               dict(init="default", steps=20, quality=3, lam=1e4)),
    StreamSpec("absolute_lam0_large_k",
               "no init, no rate weight (lam = 0), 60 steps: the largest K the encoder makes "
               "(tens of levels, R close to 65536); 32x32; 2 frames; 25 fps",
               (30, 32), (40, 40, 32, 32), Fraction(25),
               dict(init="random", steps=60, quality=8, lam=0.0)),
    StreamSpec("delta_scale2_odd",
               "the shipped init, coded at half size: odd 45x37 output, coded 23x19 (each side "
               "halved and rounded up), resized bicubic on decode; 4 frames; 25 fps; quality 4",
               (20, 24), (30, 40, 37, 45), Fraction(25),
               dict(init="default", steps=30, quality=4, scale=2)),
    StreamSpec("absolute_scale8",
               "no init, coded 8 times smaller: 40x24 output from 5x3 coded frames (a grid of "
               "1x1); 3 frames; 10 fps; quality 2", (50, 53), (60, 70, 24, 40), Fraction(10),
               dict(init="random", steps=20, quality=2, scale=8)),
)
CRAFTED = {  # name: what (written record by record, see make())
    "delta_kmax": f"delta_q6 with {KMAX_TENSOR} requantized to K = 32767 (the largest level, a "
                  "65,535-entry table) with R = 65535, and the last other coded tensor with R = 0",
    "delta_all_zero": "the shipped init alone: every tensor K = 0 (steps 0, -0.0, 0.5 and 65504), "
                      "n_words = 1 (the end marker alone); 40x24; 2 GOPs of 1 frame; 24000/1001 fps",
}
LEGACY = {  # name: what; streams of older versions, kept as written then (make() leaves them)
    "v2_delta_q6": "delta_q6 of nervc 0.3 with a version 2.0 header (no coded size: the output "
                   "size is coded); a decoder of version 4 still reads version 2",
    "v3_delta_q6": "delta_q6 as nervc 0.3 wrote it (version 3.0: 4 anchors as the init's, GOP "
                   "sections without identity or end marker)",
    "v3_absolute_odd_3gop": "absolute_odd_3gop as nervc 0.3 wrote it (version 3.0, 3 GOPs)",
    "v3_delta_scale2_odd": "delta_scale2_odd as nervc 0.3 wrote it (version 3.0, coded at half size)",
    "v3_delta_all_zero": "delta_all_zero as nervc 0.3 wrote it (version 3.0: n_words = 0)",
}
INVALID = {  # name: (derived from, how, what a decoder must say: regex, case-insensitive)
    "bad_future_version": ("absolute_odd_3gop", "version_major = 5 (header CRC left as it was)",
                           r"not supported.*upgrade"),
    "bad_corrupt_version": ("absolute_odd_3gop", "version_major = 200 (header CRC left as it was)",
                            r"corrupt"),
    "bad_swapped_gops": ("absolute_odd_3gop", "GOP sections 0 and 1 swapped (each intact, CRCs valid)",
                         r"swapped"),
    "bad_short_payload": ("delta_q6", "the first ANS word of the GOP removed, n_words, length and "
                          "CRC set to match (only the entropy decoder can tell)", r"ends early or late"),
    "bad_version1": ("absolute_odd_3gop", "version_major = 1 (header CRC left as it was)",
                     r"no longer supported"),
    "bad_header_crc": ("absolute_odd_3gop", "fps_num 30000 -> 30001 (a valid value, so only the "
                       "header CRC is wrong)", r"header.*CRC|CRC.*header"),
    "bad_section_crc": ("delta_q6", "one byte of the last ANS words flipped",
                        r"section.*CRC|CRC.*section"),
    "bad_truncated": ("delta_q6", "the last 100 bytes cut", r"truncat"),
    "bad_trailing": ("absolute_odd_3gop", "4 zero bytes appended", r"trailing"),
    "bad_coded_size": ("delta_scale2_odd", "coded_width = width + 1 (header CRC recomputed)",
                       r"coded"),
}


def _corrupt(data: bytes, name: str) -> bytes:
    b = bytearray(data)
    if name == "bad_future_version":
        b[4] = 5
    elif name == "bad_corrupt_version":
        b[4] = 200
    elif name in ("bad_swapped_gops", "bad_short_payload"):
        return _edit_sections(bytes(b), name)
    elif name == "bad_version1":
        b[4] = 1
    elif name == "bad_header_crc":
        b[16] ^= 0x01  # fps_num (u32 at offset 16): 30000 -> 30001
    elif name == "bad_section_crc":
        b[-50] ^= 0x10
    elif name == "bad_truncated":
        del b[-100:]
    elif name == "bad_trailing":
        b += bytes(4)
    elif name == "bad_coded_size":
        struct.pack_into("<H", b, 59, struct.unpack_from("<H", b, 8)[0] + 1)
        _fix_header_crc(b)
    else:
        raise ValueError(name)
    return bytes(b)


def _sections(data: bytes) -> tuple[int, list[bytes]]:
    """The header's size and every GOP section (type, length, CRC and payload) of ``data``."""
    (hlen,) = struct.unpack_from("<H", data, 6)
    pos, out = hlen + 4, []
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos + 1)
        out.append(data[pos:pos + 9 + length])
        pos += 9 + length
    return hlen + 4, out


def _section(payload: bytes) -> bytes:
    return struct.pack("<BII", 1, len(payload), zlib.crc32(payload)) + payload


def _edit_sections(data: bytes, name: str) -> bytes:
    head, secs = _sections(data)
    if name == "bad_swapped_gops":
        secs[0], secs[1] = secs[1], secs[0]
    else:  # bad_short_payload: drop the first ANS word of GOP 0, every count kept consistent
        import tempfile

        from bitstreams.format import BitstreamReader
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "x.nerv").write_bytes(data)
            n_words = len(BitstreamReader(Path(d) / "x.nerv").read_gop(0).words)
        payload = secs[0][9:]
        at = len(payload) - 4 * n_words  # the first word; its count is the u32 before it
        payload = payload[:at - 4] + struct.pack("<I", n_words - 1) + payload[at + 4:]
        secs[0] = _section(payload)
    return data[:head] + b"".join(secs)


def _fix_header_crc(b: bytearray) -> None:
    (hlen,) = struct.unpack_from("<H", b, 6)
    struct.pack_into("<I", b, hlen, zlib.crc32(bytes(b[:hlen])))


def as_version2(data: bytes) -> bytes:
    """A version 3 stream whose coded size is its output size, with a version 2.0 header:
    the coded size's 4 bytes (offset 59) left out, header_length and CRC set again."""
    (hlen,) = struct.unpack_from("<H", data, 6)
    if data[4] != 3 or struct.unpack_from("<HH", data, 59) != struct.unpack_from("<HH", data, 8):
        raise NervcError("only a version 3 stream coded at its output size has a version 2 form")
    b = bytearray(data[:59] + data[63:hlen] + bytes(4) + data[hlen + 4:])
    b[4], b[5] = 2, 0
    struct.pack_into("<H", b, 6, hlen - 4)
    _fix_header_crc(b)
    return bytes(b)


# ------------------------------------------------------------------ this codec's decoder

class CodecDecoder:
    """:mod:`codec.decoder` behind the checker's protocol (see bitstreams/conform.py)."""

    def __init__(self, device: str = "cpu", inits: list[str] | None = None) -> None:
        self.device, self.inits = device, inits
        self.name = f"codec.decoder (device {device})"

    def info(self, path: Path) -> dict:
        from bitstreams.format import BitstreamReader

        r = BitstreamReader(path)
        h, c = r.header, r.header.config
        return {
            "version": list(_version(path)), "width": h.width, "height": h.height,
            "coded_size": [h.coded_width, h.coded_height],
            "num_frames": h.num_frames, "fps": [h.fps.numerator, h.fps.denominator],
            "gop_frames": h.gop_frames, "num_gops": h.num_gops,
            "init_id": h.init_digest.hex() if h.has_init else None,
            "model": {"pe_freqs": c.pe_freqs, "pe_base": float(c.pe_base), "embed_dim": c.embed_dim,
                      "grid_channels": c.grid_channels, "grid_anchors": c.grid_anchors,
                      "channels": list(c.channels), "strides": list(c.strides)},
            "records": [[conform.record(t.step, t.K, t.R) for t in r.read_gop(g).tensors]
                        for g in range(h.num_gops)],
        }

    def weights(self, path: Path, gop: int) -> dict[str, np.ndarray]:
        from bitstreams.format import BitstreamReader
        from codec.decoder import init_state_for_header, reconstruct_weights

        r = BitstreamReader(path)
        init = init_state_for_header(r.header, self.inits, path) if r.header.has_init else None
        return {k: v.numpy() for k, v in reconstruct_weights(r, r.read_gop(gop), init).items()}

    def frames(self, path: Path) -> np.ndarray:
        from codec.decoder import decode

        return decode(path, device=self.device, init=self.inits).frames


def _version(path: Path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(6)
    return head[4], head[5]


# ------------------------------------------------------------------ making the streams

def _k_summary(path: Path) -> str:
    from bitstreams import refdecoder

    recs = [t for sec in refdecoder.read(path).sections for t in sec.records]
    return (f" [K: max {max(t.K for t in recs)}, 0 in {sum(t.K == 0 for t in recs)} "
            f"of {len(recs)} tensor records]")


def _write_kmax(src: Path, dst: Path) -> None:
    """``src`` (one GOP, delta) with KMAX_TENSOR requantized to K = 32767, R = 65535, and the
    last other coded tensor's levels re-sent with R = 0."""
    from bitstreams.format import BitstreamReader, GopRecord, TensorRecord, write_bitstream
    from codec.entropy import LaplaceModel, decode_tensors, encode_tensors

    r = BitstreamReader(src)
    g = r.read_gop(0)
    names = [n for n, _ in r.shapes]
    sizes = [int(np.prod(s)) for _, s in r.shapes]
    levels = decode_tensors(g.words, [LaplaceModel(t.K, t.R) for t in g.tensors], sizes)
    recs = list(g.tensors)
    i = names.index(KMAX_TENSOR)
    res = levels[i].astype(np.float32) * np.float32(recs[i].step)
    m = float(np.abs(res).max())
    if m == 0:
        raise NervcError(f"{src}: {KMAX_TENSOR} has no residual to requantize")
    step = np.float16(m / 32767)
    while m / float(np.float32(step)) < 32767:  # the largest residual must reach level 32767
        step = np.nextafter(step, np.float16(0))
    levels[i] = np.clip(np.rint(res / np.float32(step)), -32767, 32767).astype(np.int64)
    recs[i] = TensorRecord(step, int(np.abs(levels[i]).max()), 65535)
    assert recs[i].K == 32767
    j = max(k for k, t in enumerate(recs) if t.K and k != i)
    recs[j] = TensorRecord(recs[j].step, recs[j].K, 0)
    words = encode_tensors(levels, [LaplaceModel(t.K, t.R) for t in recs])
    write_bitstream(dst, r.header, [GopRecord(g.first_frame, g.num_frames, recs, words)])


def _write_all_zero(dst: Path) -> None:
    """The shipped init alone: 2 one-frame GOPs of 40x24, every tensor K = 0, no words."""
    from bitstreams.format import GopRecord, Header, TensorRecord, param_shapes, write_bitstream
    from codec.inits import resolve_init

    from codec.entropy import LaplaceModel, encode_tensors

    init = resolve_init("default")
    h = Header(40, 24, 2, Fraction(24000, 1001), 1, 2, init.config, init.digest)
    steps = [np.float16(0.0), np.float16(-0.0), np.float16(0.5), np.float16(65504.0)]
    shapes = param_shapes(h.config, h.grid_hw)
    n = len(shapes)
    marker = encode_tensors([np.zeros(int(np.prod(s)), np.int64) for _, s in shapes], [LaplaceModel(0, 0)] * n)
    gops = [GopRecord(g, 1, [TensorRecord(steps[(k + g) % 4], 0, 0) for k in range(n)], marker)
            for g in range(2)]
    write_bitstream(dst, h, gops)


def make(out_dir: Path, log=print) -> None:
    """Write every stream into ``out_dir`` with the reference decoder's expectations."""
    from codec.encoder import encode
    from nervcore.video_io import Video, read_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clip = read_video(DEMO_CLIP)
    whats = {}
    for s in STREAMS:
        top, left, hh, ww = s.crop
        frames = np.ascontiguousarray(clip.frames[s.frames[0]:s.frames[1], top:top + hh, left:left + ww])
        kw = dict(s.encode)
        quality = kw.pop("quality", 3)
        path = out_dir / f"{s.name}.nerv"
        encode(Video(frames, s.fps), path, quality=quality, progress=False, overwrite=True, **kw)
        whats[s.name] = s.what + _k_summary(path)
        log(f"encoded {path}")
    _write_kmax(out_dir / "delta_q6.nerv", out_dir / "delta_kmax.nerv")
    _write_all_zero(out_dir / "delta_all_zero.nerv")
    whats.update(CRAFTED)
    whats.update({k: v for k, v in LEGACY.items() if (out_dir / f"{k}.nerv").is_file()})
    for name, what in whats.items():
        path = out_dir / f"{name}.nerv"
        expect, decoded = conform.expectations(path)  # the reference decoder's reading
        expect = {"name": name, "what": what, "valid": True, **expect}
        (out_dir / f"{name}.json").write_text(conform.to_json(expect))
        (out_dir / f"{name}.rgb").write_bytes(decoded.tobytes())
    for name, (base, how, reason) in INVALID.items():
        path = out_dir / f"{name}.nerv"
        path.write_bytes(_corrupt((out_dir / f"{base}.nerv").read_bytes(), name))
        (out_dir / f"{name}.json").write_text(conform.to_json(
            {"name": name, "what": f"{base} with {how}", "valid": False, "reason": reason,
             "file_sha256": conform.sha256_file(path), "file_bytes": path.stat().st_size}))
    log(f"wrote {len(whats)} valid and {len(INVALID)} invalid streams to {out_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.conformance", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="(re)generate the conformance streams (encodes: about a minute)")
    m.add_argument("directory", type=Path)
    c = sub.add_parser("check", help="judge this codec's decoder against the conformance streams")
    c.add_argument("directory", nargs="?", type=Path, default=HERE)
    c.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    c.add_argument("--init", action="append", default=None, metavar="PATH")
    args = p.parse_args(argv)
    try:
        if args.cmd == "make":
            make(args.directory)
            return 0
        dec = CodecDecoder(args.device, args.init)
        verdicts = conform.check(args.directory, dec)
    except NervcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return conform.report(verdicts, dec.name)


if __name__ == "__main__":
    sys.exit(main())
