"""Judge a ``.nerv`` decoder against the conformance streams in ``bitstreams/conformance/``.

The streams (made by ``python -m codec.conformance make DIR``, which needs the encoder) come
with ``NAME.json``: what the reference decoder (:mod:`bitstreams.refdecoder`, written from
SPEC.md alone) reads in them, and ``NAME.rgb``: the reference decoder's frames. This module
only *checks*, and imports nothing from ``codec/``: it judges whatever decoder it is handed.

A decoder is any object with three methods (or :class:`FunctionDecoder` around three
callables):

* ``info(path) -> dict``: the header as read (``version``, ``width``, ``height``,
  ``coded_size`` ``[width, height]`` (the output size for version 2), ``num_frames``, ``fps`` ``[num, den]``, ``gop_frames``, ``num_gops``, ``init_id`` (32 hex
  digits, ``None`` without an init), ``model`` (``pe_freqs``, ``pe_base``, ``embed_dim``,
  ``grid_channels``, ``grid_anchors``, ``channels``, ``strides``)) and ``records``: per GOP, per
  canonical tensor, ``[step, K, R]`` (``R`` is ``None`` when ``K = 0``);
* ``weights(path, gop) -> dict[str, np.ndarray]``: one GOP's reconstructed float32 weights;
* ``frames(path) -> np.ndarray``: every frame, uint8 ``[N, H, W, 3]``.

What a conforming decoder must match, per valid stream:

* every header field and the init id, and every tensor record ``(step, K, R)``, exactly;
* **weights, exactly**: each GOP's float32 weights, concatenated in canonical tensor order as
  little-endian bytes, hash to ``weights_sha256`` (the weights are integer and IEEE float32
  arithmetic only: SPEC "Reconstructing a tensor");
* **frames, closely**: running the network is floating point and its last bits depend on the
  convolution kernels (CPU vector widths, GPUs), which can flip a rounded 8-bit sample by one.
  So every sample must lie within ``FRAME_TOLERANCE`` of ``NAME.rgb`` and the PSNR against it
  be at least ``MIN_PSNR_DB``; whether the frames also hash to ``frames_sha256`` is reported.

and per invalid stream: refuse it (raise) with a message matching the stream's ``reason``
regex (case-insensitive; the file's path and name are blanked out of the message first, since
the stream names say what is wrong): refusing for another reason fails too.

    python -m bitstreams.conform check [DIR] [--init PATH] [--decoder MODULE:OBJECT]
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bitstreams import refdecoder
from nervcore.errors import NervcError

HERE = Path(__file__).resolve().parent / "conformance"
FRAME_TOLERANCE = 2
MIN_PSNR_DB = 50.0
HEADER_FIELDS = ("version", "width", "height", "coded_size", "num_frames", "fps", "gop_frames", "num_gops",
                 "init_id", "model")


class Decoder(Protocol):
    name: str

    def info(self, path: Path) -> dict: ...

    def weights(self, path: Path, gop: int) -> dict[str, np.ndarray]: ...

    def frames(self, path: Path) -> np.ndarray: ...


@dataclass
class FunctionDecoder:
    """A decoder made of three callables (see the module docstring)."""

    name: str
    info: Callable[[Path], dict]
    weights: Callable[[Path, int], dict[str, np.ndarray]]
    frames: Callable[[Path], np.ndarray]


def record(step: float, K: int, R: int | None) -> list:
    """One tensor record as the JSON stores it: ``[step, K, R]``, ``R = None`` when ``K = 0``."""
    return [float(step), int(K), int(R) if K else None]


class ReferenceDecoder:
    """:mod:`bitstreams.refdecoder` behind the checker's protocol (the default decoder)."""

    name = "reference decoder (bitstreams.refdecoder)"

    def __init__(self, inits: Sequence[str | Path] | None = None) -> None:
        self.inits = list(inits or [])

    def info(self, path: Path) -> dict:
        s = refdecoder.read(path)
        h = s.header
        return {
            "version": list(h.version), "width": h.width, "height": h.height,
            "coded_size": [h.coded_width, h.coded_height],
            "num_frames": h.num_frames, "fps": [h.fps_num, h.fps_den], "gop_frames": h.gop_frames,
            "num_gops": h.num_gops, "init_id": h.init_id.hex() if h.has_init else None,
            "model": {"pe_freqs": h.pe_freqs, "pe_base": float(h.pe_base), "embed_dim": h.embed_dim,
                      "grid_channels": h.grid_channels, "grid_anchors": h.grid_anchors,
                      "channels": list(h.channels), "strides": list(h.strides)},
            "records": [[record(t.step, t.K, t.R) for t in sec.records] for sec in s.sections],
        }

    def weights(self, path: Path, gop: int) -> dict[str, np.ndarray]:
        return refdecoder.weights(path, gop, self.inits)

    def frames(self, path: Path) -> np.ndarray:
        return refdecoder.decode(path, self.inits)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tensor_digest(t: np.ndarray) -> str:
    """First 16 hex digits of the SHA-256 of one tensor's float32 little-endian bytes."""
    return hashlib.sha256(np.ascontiguousarray(t, dtype="<f4").tobytes()).hexdigest()[:16]


def weights_digest(weights: dict[str, np.ndarray], names: Sequence[str]) -> str:
    """SHA-256 of one GOP's float32 weights, in the order ``names``, little-endian."""
    h = hashlib.sha256()
    for n in names:
        h.update(np.ascontiguousarray(weights[n], dtype="<f4").tobytes())
    return h.hexdigest()


def expectations(path: Path, decoder: Decoder | None = None) -> tuple[dict, np.ndarray]:
    """What ``NAME.json`` stores for a valid stream, read by ``decoder`` (the reference
    decoder unless told otherwise), and its frames (``NAME.rgb``)."""
    dec = decoder or ReferenceDecoder()
    path = Path(path)
    info = dec.info(path)
    per_gop = [dec.weights(path, g) for g in range(info["num_gops"])]
    names = list(per_gop[0])
    frames = np.ascontiguousarray(dec.frames(path), dtype=np.uint8)
    expect = {
        "file_sha256": sha256_file(path), "file_bytes": path.stat().st_size,
        **{k: info[k] for k in HEADER_FIELDS},
        "tensors": [[n, list(per_gop[0][n].shape)] for n in names],
        "records": info["records"],
        "weights_sha256": [weights_digest(w, names) for w in per_gop],
        "tensor_sha256": [[tensor_digest(w[n]) for n in names] for w in per_gop],
        "frames_shape": list(frames.shape),
        "frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
    }
    return expect, frames


def to_json(obj: dict) -> str:
    """Indented JSON, with any list that fits in 100 characters on one line."""
    def dump(x, ind: int) -> str:
        flat = json.dumps(x)
        if not isinstance(x, (dict, list)) or (not _has_dict(x) and len(flat) <= 100):
            return flat
        pad = " " * (ind + 1)
        if isinstance(x, dict):
            body = ",\n".join(f"{pad}{json.dumps(k)}: {dump(v, ind + 1)}" for k, v in x.items())
            return "{\n" + body + "\n" + " " * ind + "}"
        return "[\n" + ",\n".join(pad + dump(v, ind + 1) for v in x) + "\n" + " " * ind + "]"

    return dump(obj, 0) + "\n"


def _has_dict(x) -> bool:
    return isinstance(x, dict) or (isinstance(x, list) and any(_has_dict(v) for v in x))


@dataclass
class Verdict:
    name: str
    ok: bool
    detail: str
    max_diff: int | None = None  # frames: largest |decoded - reference| sample difference
    frames_sha_match: bool | None = None


def _describe(e: BaseException) -> str:
    msg = (str(e).splitlines() or [""])[0]
    return msg if isinstance(e, NervcError) else f"{type(e).__name__}: {msg}"


def _check_invalid(expect: dict, path: Path, dec: Decoder) -> Verdict:
    name, reason = expect["name"], expect["reason"]
    try:
        dec.frames(path)
    except Exception as e:  # noqa: BLE001 - any refusal is judged by its message
        msg = _describe(e)
        # the stream's own name ("bad_section_crc.nerv") must not be what matches the reason
        bare = msg
        for p in sorted({str(path), str(path.resolve()), path.name}, key=len, reverse=True):
            bare = bare.replace(p, "<file>")
        if re.search(reason, bare, re.IGNORECASE):
            return Verdict(name, True, f"refused: {msg}")
        return Verdict(name, False, f"refused for the wrong reason (expected /{reason}/): {msg}")
    return Verdict(name, False, f"decoded, but it is invalid ({expect['what']}); "
                                f"expected a refusal matching /{reason}/")


def _record_or_none(x) -> list | None:
    try:
        return record(*x)
    except (TypeError, ValueError):
        return None


def _compare_records(got, want) -> list[str]:
    if not isinstance(got, list) or len(got) != len(want):
        return [f"records for {len(got) if isinstance(got, list) else '?'} GOPs, expected {len(want)}"]
    out = []
    for g, (a, b) in enumerate(zip(got, want)):
        if len(a) != len(b):
            out.append(f"GOP {g}: {len(a)} tensor records, expected {len(b)}")
            continue
        bad = [i for i, (x, y) in enumerate(zip(a, b)) if _record_or_none(x) != y]
        if bad:
            i = bad[0]
            out.append(f"GOP {g}: {len(bad)} tensor records differ, first #{i} "
                       f"(step, K, R) = {a[i]!r}, expected {b[i]!r}")
    return out


def _check_valid(expect: dict, path: Path, rgb_path: Path, dec: Decoder) -> Verdict:
    name = expect["name"]
    problems: list[str] = []
    try:
        info = dec.info(path)
    except Exception as e:  # noqa: BLE001
        return Verdict(name, False, f"refused a valid stream: {_describe(e)}")
    for k in HEADER_FIELDS:
        if info.get(k) != expect[k]:
            what = "init id" if k == "init_id" else f"header field {k}"
            problems.append(f"{what} {info.get(k)!r}, expected {expect[k]!r}")
    problems += _compare_records(info.get("records"), expect["records"])

    names = [n for n, _ in expect["tensors"]]
    shapes = {n: tuple(s) for n, s in expect["tensors"]}
    for g, want in enumerate(expect["weights_sha256"]):
        try:
            w = dec.weights(path, g)
        except Exception as e:  # noqa: BLE001
            return Verdict(name, False, f"refused a valid stream (GOP {g} weights): {_describe(e)}")
        if set(w) != set(names):
            problems.append(f"GOP {g}: tensors {sorted(set(w) ^ set(names))} missing or unexpected")
            continue
        wrong_shape = [n for n in names if tuple(np.shape(w[n])) != shapes[n]]
        if wrong_shape:
            problems.append(f"GOP {g}: tensor {wrong_shape[0]} has shape {tuple(np.shape(w[wrong_shape[0]]))}, "
                            f"expected {shapes[wrong_shape[0]]}")
            continue
        if weights_digest(w, names) != want:
            per = expect.get("tensor_sha256")
            bad = [n for i, n in enumerate(names) if per and tensor_digest(w[n]) != per[g][i]]
            problems.append(f"reconstructed weights differ in GOP {g}"
                            + (f" (tensors {', '.join(bad)})" if bad else ""))

    try:
        frames = np.asarray(dec.frames(path))
    except Exception as e:  # noqa: BLE001
        return Verdict(name, False, f"refused a valid stream: {_describe(e)}")
    want_shape = tuple(expect["frames_shape"])
    if frames.shape != want_shape or frames.dtype != np.uint8:
        problems.append(f"frames are {frames.dtype} {frames.shape}, expected uint8 {want_shape}")
        return Verdict(name, False, "; ".join(problems))
    ref_bytes = rgb_path.read_bytes()
    if hashlib.sha256(ref_bytes).hexdigest() != expect["frames_sha256"]:
        problems.append(f"conformance data: {rgb_path.name} does not match frames_sha256")
    ref = np.frombuffer(ref_bytes, np.uint8)
    if ref.size != frames.size:
        problems.append(f"{frames.size} samples decoded, {rgb_path.name} has {ref.size}")
        return Verdict(name, False, "; ".join(problems))
    sha_match = hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest() == expect["frames_sha256"]
    diff = np.abs(frames.reshape(-1).astype(np.int16) - ref.astype(np.int16))
    max_diff = int(diff.max()) if diff.size else 0
    mse = float(np.mean(diff.astype(np.float64) ** 2)) if diff.size else 0.0
    db = math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)
    if max_diff > FRAME_TOLERANCE or db < MIN_PSNR_DB:
        problems.append(f"frames differ from {rgb_path.name} by up to {max_diff} "
                        f"(tolerance {FRAME_TOLERANCE}), PSNR {db:.1f} dB (minimum {MIN_PSNR_DB:g})")
    frames_note = ("frames identical (frames_sha256 matches)" if sha_match else
                   f"frames_sha256 differs: max |diff| {max_diff}, "
                   f"{np.count_nonzero(diff) / diff.size:.3%} samples differ, PSNR {db:.1f} dB")
    if problems:
        return Verdict(name, False, "; ".join(problems) + f" [{frames_note}]", max_diff, sha_match)
    return Verdict(name, True, f"header, init id and {sum(map(len, expect['records']))} tensor records "
                               f"exact, weights exact ({len(expect['weights_sha256'])} GOP(s)), {frames_note}",
                   max_diff, sha_match)


def check_stream(json_path: Path, decoder: Decoder | None = None) -> Verdict:
    """Judge ``decoder`` (the reference decoder by default) on one conformance stream."""
    json_path = Path(json_path)
    expect = json.loads(json_path.read_text())
    path = json_path.with_suffix(".nerv")
    name = expect.get("name", json_path.stem)
    if not path.is_file():
        return Verdict(name, False, f"conformance data: {path.name} is missing")
    if "file_sha256" in expect and sha256_file(path) != expect["file_sha256"]:
        return Verdict(name, False, f"conformance data: {path.name} does not match its file_sha256")
    dec = decoder or ReferenceDecoder()
    if not expect["valid"]:
        return _check_invalid(expect, path, dec)
    return _check_valid(expect, path, json_path.with_suffix(".rgb"), dec)


def check(directory: Path = HERE, decoder: Decoder | None = None) -> list[Verdict]:
    """Judge ``decoder`` on every stream in ``directory`` (valid ones first)."""
    directory = Path(directory)
    jsons = sorted(directory.glob("*.json"), key=lambda p: (p.stem.startswith("bad_"), p.stem))
    if not jsons:
        raise NervcError(f"{directory}: no conformance streams (*.json) found")
    dec = decoder or ReferenceDecoder()
    return [check_stream(j, dec) for j in jsons]


def report(verdicts: list[Verdict], decoder_name: str, out=None) -> int:
    """Print one line per stream and a summary; returns the exit status (0: all pass)."""
    out = out or sys.stdout
    print(f"decoder: {decoder_name}", file=out)
    for v in verdicts:
        print(f"{'PASS' if v.ok else 'FAIL'}  {v.name}: {v.detail}", file=out)
    failed = sum(not v.ok for v in verdicts)
    print(f"{len(verdicts) - failed}/{len(verdicts)} conformance streams pass", file=out)
    return 1 if failed else 0


def load_decoder(spec: str) -> Any:
    """``module:attribute`` -> that object (called first when it is a class or factory)."""
    mod, _, attr = spec.partition(":")
    if not mod or not attr:
        raise NervcError(f"--decoder {spec!r}: expected MODULE:OBJECT")
    try:
        obj = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise NervcError(f"--decoder {spec!r}: {e}") from None
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "frames")):
        obj = obj()
    for m in ("info", "weights", "frames"):
        if not callable(getattr(obj, m, None)):
            raise NervcError(f"--decoder {spec!r}: has no {m}() method")
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bitstreams.conform",
                                description="Judge a .nerv decoder against the conformance streams.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="decode the conformance streams and judge the result")
    c.add_argument("directory", nargs="?", type=Path, default=HERE)
    c.add_argument("--init", action="append", default=[], metavar="PATH",
                   help="extra init file for the reference decoder")
    c.add_argument("--decoder", metavar="MODULE:OBJECT",
                   help="judge this decoder (an object with info/weights/frames) instead of the reference one")
    m = sub.add_parser("make", help="moved: python -m codec.conformance make DIR (it needs the encoder)")
    m.add_argument("directory", nargs="?")
    args = p.parse_args(argv)
    if args.cmd == "make":
        print("error: making the streams needs the encoder: run python -m codec.conformance make DIR",
              file=sys.stderr)
        return 2
    try:
        dec = load_decoder(args.decoder) if args.decoder else ReferenceDecoder(args.init)
        verdicts = check(args.directory, dec)
    except NervcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return report(verdicts, getattr(dec, "name", type(dec).__name__))


if __name__ == "__main__":
    sys.exit(main())
