"""Conformance streams for the ``.nerv`` format: make them, and check a decoder against them.

``bitstreams/conformance/`` holds small valid streams that between them use every feature of
SPEC.md version 1 (odd sizes and padding, several GOPs with a shorter last one, an NTSC frame
rate, absolute and delta-coded tensors, 2- to 10-bit levels, pruned tensors, single-symbol
tensors), each with ``NAME.json`` (what its header says, the SHA-256 of every GOP's
reconstructed weights, the decoded frames' digest) and ``NAME.rgb`` (the reference decoder's
frames, raw uint8 RGB, frame after frame, row-major). Plus invalid streams a decoder must
refuse. What a conforming decoder must match:

* **weights, exactly**: the float32 weights of each GOP (base + residual, SPEC "Decoding a
  tensor"), concatenated in canonical tensor order as little-endian bytes, hash to
  ``weights_sha256``. This part of decoding is integer and IEEE arithmetic only.
* **frames, closely**: running the network is floating point and differs in the last bits
  between convolution kernels (CPU vector widths, GPUs), which can flip a rounded 8-bit sample
  by one. So every sample must lie within ``FRAME_TOLERANCE`` of the reference and the PSNR
  against the reference must be at least ``MIN_PSNR_DB``.

    python -m bitstreams.conform check [DIR] [--device cpu|cuda]
    python -m bitstreams.conform make DIR      # regenerate (a new format version or init)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from bitstreams.format import BitstreamReader
from nervcore.errors import NervcError

HERE = Path(__file__).resolve().parent / "conformance"
FRAME_TOLERANCE = 2
MIN_PSNR_DB = 50.0
DEMO_CLIP = Path(__file__).resolve().parents[1] / "codec" / "data" / "carphone_qcif_120f.mp4"


@dataclass(frozen=True)
class StreamSpec:
    """A conformance stream: a crop of the bundled clip and the encoder settings."""

    name: str
    what: str
    frames: tuple[int, int]  # [a, b) of the bundled clip
    crop: tuple[int, int, int, int]  # top, left, height, width
    fps: Fraction
    encode: dict = field(default_factory=dict)


STREAMS = (
    StreamSpec("random_odd_2gop", "no init (all tensors absolute), odd 37x29 size padded to 48x32, "
               "2 GOPs of 4 + 2 frames, 30000/1001 fps, 2-bit levels, 90 % pruned",
               (10, 16), (40, 60, 29, 37), Fraction(30000, 1001),
               dict(init="random", gop=4, steps=30, bits=2, prune=0.9)),
    StreamSpec("delta_q3", "shipped init, delta-coded tensors (mode 1), 64x48, 5 frames, "
               "quality 3 (6 bits, 20 % pruned)", (0, 5), (48, 56, 48, 64), Fraction(15),
               dict(init="default", steps=20, quality=3)),
    StreamSpec("delta_10bit", "shipped init, 10-bit levels, 70 % pruned, 3 frames of 48x32, 1 fps",
               (60, 63), (56, 64, 32, 48), Fraction(1),
               dict(init="default", steps=20, bits=10, prune=0.7)),
)
INVALID = {  # name: (derived from, how, what a decoder must say it is)
    "bad_future_version": ("random_odd_2gop", "version_major = 2", "a future version"),
    "bad_header_crc": ("random_odd_2gop", "one header byte flipped", "a header CRC mismatch"),
    "bad_section_crc": ("delta_q3", "one payload byte flipped", "a section CRC mismatch"),
    "bad_truncated": ("delta_q3", "last 100 bytes cut", "truncation"),
    "bad_trailing": ("random_odd_2gop", "4 bytes appended", "trailing bytes"),
}


def weights_digest(reader: BitstreamReader, gop: int, init_state) -> str:
    """SHA-256 of one GOP's reconstructed float32 weights, canonical order, little-endian."""
    from codec.decoder import reconstruct_weights

    weights = reconstruct_weights(reader, reader.read_gop(gop), init_state)
    h = hashlib.sha256()
    for name, _ in reader.shapes:
        h.update(weights[name].numpy().astype("<f4", copy=False).tobytes())
    return h.hexdigest()


def _expectations(path: Path) -> tuple[dict, np.ndarray]:
    from codec.decoder import decode, init_state_for_header

    reader = BitstreamReader(path)
    h = reader.header
    init_state = init_state_for_header(h, None, path) if h.has_init else None
    frames = decode(path, device="cpu").frames
    return {
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "file_bytes": path.stat().st_size,
        "width": h.width, "height": h.height, "num_frames": h.num_frames,
        "fps": [h.fps.numerator, h.fps.denominator], "gop_frames": h.gop_frames,
        "num_gops": h.num_gops, "init_id": h.init_digest.hex()[:16] if h.has_init else None,
        "tensor_modes": [[t.mode for t in reader.read_gop(g).tensors] for g in range(h.num_gops)],
        "tensor_bits": [[t.bits for t in reader.read_gop(g).tensors] for g in range(h.num_gops)],
        "weights_sha256": [weights_digest(reader, g, init_state) for g in range(h.num_gops)],
        "frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
    }, frames


def _corrupt(data: bytes, how: str) -> bytes:
    b = bytearray(data)
    if how == "version_major = 2":
        b[4] = 2
    elif how == "one header byte flipped":
        b[9] ^= 0x01
    elif how == "one payload byte flipped":
        b[-50] ^= 0x10
    elif how == "last 100 bytes cut":
        del b[-100:]
    elif how == "4 bytes appended":
        b += b"\0\0\0\0"
    return bytes(b)


def make(out_dir: Path) -> None:
    """Encode every stream of STREAMS into ``out_dir`` with its expectations and frames."""
    from codec.encoder import encode
    from nervcore.video_io import Video, read_video

    out_dir.mkdir(parents=True, exist_ok=True)
    clip = read_video(DEMO_CLIP)
    for s in STREAMS:
        top, left, hh, ww = s.crop
        frames = np.ascontiguousarray(clip.frames[s.frames[0]:s.frames[1], top:top + hh, left:left + ww])
        kw = dict(s.encode)
        quality = kw.pop("quality", 3)
        path = out_dir / f"{s.name}.nerv"
        encode(Video(frames, s.fps), path, quality=quality, progress=False, overwrite=True, **kw)
        expect, decoded = _expectations(path)
        expect = {"name": s.name, "what": s.what, "valid": True, **expect}
        (out_dir / f"{s.name}.json").write_text(json.dumps(expect, indent=1) + "\n")
        (out_dir / f"{s.name}.rgb").write_bytes(decoded.tobytes())
    for name, (base, how, reason) in INVALID.items():
        data = _corrupt((out_dir / f"{base}.nerv").read_bytes(), how)
        (out_dir / f"{name}.nerv").write_bytes(data)
        (out_dir / f"{name}.json").write_text(json.dumps(
            {"name": name, "what": f"{base} with {how}", "valid": False, "reason": reason},
            indent=1) + "\n")


@dataclass
class Verdict:
    name: str
    ok: bool
    detail: str


def check_stream(json_path: Path, device: str = "cpu") -> Verdict:
    """Decode one conformance stream with this package's decoder and judge it."""
    from codec.decoder import decode, init_state_for_header

    expect = json.loads(json_path.read_text())
    name, path = expect["name"], json_path.with_suffix(".nerv")
    if not expect["valid"]:
        try:
            decode(path, device=device)
        except NervcError as e:
            return Verdict(name, True, f"refused: {e}")
        return Verdict(name, False, f"decoded, but it has {expect['reason']}")
    try:
        reader = BitstreamReader(path)
        h = reader.header
        got = {"width": h.width, "height": h.height, "num_frames": h.num_frames,
               "fps": [h.fps.numerator, h.fps.denominator], "gop_frames": h.gop_frames,
               "num_gops": h.num_gops}
        wrong = [k for k, v in got.items() if expect[k] != v]
        if wrong:
            return Verdict(name, False, "header differs: " + ", ".join(
                f"{k} {got[k]} != {expect[k]}" for k in wrong))
        init_state = init_state_for_header(h, None, path) if h.has_init else None
        digests = [weights_digest(reader, g, init_state) for g in range(h.num_gops)]
        if digests != expect["weights_sha256"]:
            bad = [g for g, (a, b) in enumerate(zip(digests, expect["weights_sha256"])) if a != b]
            return Verdict(name, False, f"reconstructed weights differ in GOP(s) {bad}")
        frames = decode(path, device=device).frames
    except NervcError as e:
        return Verdict(name, False, f"refused a valid stream: {e}")
    ref = np.fromfile(json_path.with_suffix(".rgb"), np.uint8)
    if ref.size != frames.size:
        return Verdict(name, False, f"{frames.size} samples decoded, reference has {ref.size}")
    diff = np.abs(frames.reshape(-1).astype(np.int16) - ref.astype(np.int16))
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    db = math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)
    detail = (f"weights exact, frames max |diff| {int(diff.max())}, "
              f"{np.count_nonzero(diff) / diff.size:.2%} samples differ, PSNR {db:.1f} dB")
    return Verdict(name, int(diff.max()) <= FRAME_TOLERANCE and db >= MIN_PSNR_DB, detail)


def check(directory: Path = HERE, device: str = "cpu") -> list[Verdict]:
    """Judge every stream in ``directory`` (valid ones first)."""
    jsons = sorted(directory.glob("*.json"), key=lambda p: (p.stem.startswith("bad_"), p.stem))
    if not jsons:
        raise NervcError(f"{directory}: no conformance streams (*.json) found")
    return [check_stream(j, device) for j in jsons]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bitstreams.conform", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="decode the conformance streams and judge the result")
    c.add_argument("directory", nargs="?", type=Path, default=HERE)
    c.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    m = sub.add_parser("make", help="(re)generate the conformance streams")
    m.add_argument("directory", type=Path)
    args = p.parse_args(argv)
    try:
        if args.cmd == "make":
            make(args.directory)
            print(f"wrote {len(STREAMS)} valid and {len(INVALID)} invalid streams to {args.directory}")
            return 0
        verdicts = check(args.directory, args.device)
    except NervcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for v in verdicts:
        print(f"{'PASS' if v.ok else 'FAIL'}  {v.name}: {v.detail}")
    failed = sum(not v.ok for v in verdicts)
    print(f"{len(verdicts) - failed}/{len(verdicts)} conformance streams pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
