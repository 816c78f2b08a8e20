"""Writing and verification: the coded GOPs of an encode -> its ``.nerv`` files.

Each GOP's section is appended to every rung's file as it comes in: to ``OUT.nerv.partial``
with its journal when the input is a file (``codec.resume.PartialWriter``: a stopped encode can
be resumed from it), else to a hidden temporary (``BitstreamWriter``); nothing is in place under
the output's name until the end. Before a file is renamed into place it is read back with the
decoder's reader and every GOP record is checked to be the one measured.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from tqdm import tqdm

from bitstreams import BitstreamError, BitstreamReader, BitstreamWriter, Header
from bitstreams.format import encode_gop, encode_header
from nervcore.errors import NervcError


def verify(tmp, path, header: Header, digests: list[bytes]) -> None:
    """The finished file, read back with the decoder's reader, holds exactly the header and the
    GOP records that were measured (compared through their serialized bytes)."""
    try:
        reader = BitstreamReader(tmp)
        same = encode_header(reader.header) == encode_header(header) and len(reader.sections) == len(digests)
        for i, d in enumerate(digests if same else []):
            if hashlib.sha256(encode_gop(reader.read_gop(i))).digest() != d:
                same = False
    except BitstreamError as e:
        raise NervcError(f"internal error: {path}: the written file does not read back ({e})") from None
    if not same:
        raise NervcError(f"internal error: {path}: the written file differs from what was measured")


class _Writer(BitstreamWriter):
    """The plain atomic writer, fed coded GOPs."""

    def add_coded(self, gi: int, rung) -> None:
        self.add_section(rung.section)


@dataclass
class Written:
    """What :func:`write_outputs` wrote: totals over the GOPs, per rung."""

    frames: int
    seconds: float  # from ``start`` until the last GOP was in
    sizes: dict[int, int]  # bytes of each file
    bits: dict[int, float]  # payload bits the entropy models predicted
    lams: dict[int, float]  # the rate weight the last GOP's fit ended with
    words: dict[int, int]  # ANS words
    mses: dict[int, list[np.ndarray]]  # per GOP, per frame
    rollbacks: dict[int, int]  # of the fits' divergence guard


def write_outputs(stream, paths: dict[int, os.PathLike], header: Header, known: bool, name: str,
                  num_gops: int | None, progress: bool, start: float,
                  open_writer: Callable[[int], Any] | None = None) -> Written:
    """Append each coded GOP of ``stream`` (``(index, frames, {quality: CodedRung})``, in
    order) to every rung's file, then finish, verify and commit them. ``known``: whether the
    header's counts are the source's (else they are rewritten with the frames that came).
    ``open_writer(quality)``: the rung's writer (``codec.resume.open_outputs``: the partial file
    that a stopped encode resumes from), by default a ``BitstreamWriter``."""
    est_bits = {q: 0.0 for q in paths}
    lams = {q: 0.0 for q in paths}
    words = {q: 0 for q in paths}
    rollbacks = {q: 0 for q in paths}
    mses: dict[int, list[np.ndarray]] = {q: [] for q in paths}
    digests: dict[int, list[bytes]] = {q: [] for q in paths}
    done = 0
    with ExitStack() as stack:
        writers = {q: stack.enter_context(open_writer(q) if open_writer else _Writer(p, header))
                   for q, p in paths.items()}
        bar = stack.enter_context(tqdm(total=num_gops, desc="encode", unit="GOP",
                                       disable=not progress or num_gops == 1))
        for gi, n, rungs in stream:
            for q, r in rungs.items():
                writers[q].add_coded(gi, r)
                digests[q].append(hashlib.sha256(r.section).digest())
                mses[q].append(r.mse)
                est_bits[q] += r.bits
                words[q] += r.words
                lams[q] = r.lam
                rollbacks[q] += r.rollbacks
            done += n
            bar.update()
        if done == 0:
            raise NervcError(f"{name}: no video frames")
        gop_frames = header.gop_frames
        if not known:
            header = replace(header, num_frames=done, gop_frames=min(gop_frames, done),
                             num_gops=-(-done // gop_frames))
        seconds = time.perf_counter() - start
        for q, w in writers.items():
            try:
                verify(w.finish(None if known else header), paths[q], header, digests[q])
            except NervcError:  # a file that does not read back as measured is not resumed either
                w.abort()
                raise
        sizes = {q: w.commit() for q, w in writers.items()}
    return Written(done, seconds, sizes, est_bits, lams, words, mses, rollbacks)
