"""GOPs fitted side by side: worker processes (``--jobs N``) and torch.distributed ranks
(``--distributed`` under torchrun), and the one wire format a coded GOP travels in.

GOPs are independent (each has its own network and seed, ``seed + gop index``), so the work
splits by GOP and the file is the same bytes however it was split. A coded GOP comes back from
a worker process or another rank as the same bytes (:func:`pack_gop`, :func:`unpack_gop`): its
index and frame count, then per rung the fields of a ``codec.gopcode.CodedRung``. Between ranks
they travel as uint8 tensors (no ``gather_object``, no pickle).
"""
from __future__ import annotations

import multiprocessing
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import torch

from codec.gopcode import CodedRung, code_gop
from codec.plan import GopPlan
from codec.resume import check_kept_source
from nervcore.errors import NervcError
from nervcore.video_io import VideoSource

DIST_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _threads_start(threads: int, init: Callable[..., None] | None, args: tuple) -> None:
    torch.set_num_threads(threads)
    if init is not None:
        init(*args)


def in_order_pool(items: Iterable[tuple[Any, tuple]], jobs: int, work: Callable[..., Any],
                  init: Callable[..., None] | None = None, init_args: tuple = ()) -> Iterator[tuple[Any, Any]]:
    """``(key, work(*args))`` for each ``(key, args)`` of ``items``, in the order of ``items``,
    computed by ``jobs`` spawned worker processes.

    Each worker uses ``max(1, cores // jobs)`` torch threads and first runs ``init(*init_args)``.
    At most ``jobs`` items are being worked on or waiting for a worker, and at most ``4 * jobs``
    finished results wait for an earlier one, so memory does not grow with the number of items:
    ``items`` is consumed only as workers free up. ``work`` and ``init`` must be module-level
    functions; a worker's exception is raised here, a worker that dies is a NervcError.
    """
    threads = max(1, cpu_cores() // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_threads_start, initargs=(threads, init, init_args))
    pending: deque[tuple[Any, Future]] = deque()

    def result(key, fut: Future):
        try:
            return key, fut.result()
        except BrokenProcessPool:
            raise NervcError("a --jobs worker process died (out of memory?); try fewer --jobs") from None

    try:
        for key, args in items:
            while pending and (sum(not f.done() for _, f in pending) >= jobs or len(pending) >= 4 * jobs):
                if pending[0][1].done():
                    yield result(*pending.popleft())
                else:
                    wait([f for _, f in pending if not f.done()], return_when=FIRST_COMPLETED)
            pending.append((key, pool.submit(work, *args)))
            del args
            while pending and pending[0][1].done():
                yield result(*pending.popleft())
        while pending:
            yield result(*pending.popleft())
    except BaseException:
        # Stop at once: a fit can run for minutes, and its result is no longer wanted.
        for _, f in pending:
            f.cancel()
        for p in list((getattr(pool, "_processes", None) or {}).values()):
            p.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- torch.distributed

class RankLink:
    """Point-to-point byte messages between ranks over a gloo process group.

    A message is an int64 tensor ``[status, length]`` followed by a uint8 tensor of ``length``
    bytes; status 1 carries an error message instead of data, so a rank that fails stops the
    receiver with that message rather than leaving it waiting.
    """

    def __init__(self, group=None) -> None:
        import torch.distributed as dist

        self.dist, self.group = dist, group
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()

    def _send(self, status: int, data: bytes, dst: int) -> None:
        self.dist.send(torch.tensor([status, len(data)], dtype=torch.int64), dst, group=self.group)
        if data:
            buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            self.dist.send(buf, dst, group=self.group)

    def send(self, data: bytes, dst: int = 0) -> None:
        self._send(0, data, dst)

    def send_error(self, message: str, dst: int = 0) -> None:
        self._send(1, message.encode("utf-8", "replace")[:4096], dst)

    def recv(self, src: int) -> bytes:
        head = torch.zeros(2, dtype=torch.int64)
        self.dist.recv(head, src, group=self.group)
        status, length = (int(x) for x in head)
        if length < 0 or status not in (0, 1):
            raise NervcError(f"rank {src} sent a malformed message header")
        buf = torch.empty(length, dtype=torch.uint8)
        if length:
            self.dist.recv(buf, src, group=self.group)
        data = buf.numpy().tobytes()
        if status == 1:
            raise NervcError(f"rank {src}: {data.decode('utf-8', 'replace')}")
        return data


def start_distributed() -> tuple[RankLink, Callable[[], None]]:
    """Join (or reuse) the torch.distributed process group; returns the link and a function
    that leaves the group again if this call created it."""
    import torch.distributed as dist

    if not dist.is_available():
        raise NervcError("--distributed: this torch build has no torch.distributed")
    created = False
    if not dist.is_initialized():
        missing = [k for k in DIST_ENV if k not in os.environ]
        if missing:
            raise NervcError(f"--distributed: {', '.join(missing)} not set; start the encode with "
                             "torchrun --nproc-per-node N -m codec encode ... --distributed")
        dist.init_process_group("gloo")
        created = True
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")

    def stop() -> None:
        if created and dist.is_initialized():
            dist.destroy_process_group()

    return RankLink(group), stop


# ---------------------------------------------------------------- coded GOPs

# A coded GOP on the wire: its index and frame count, then per rung the fields of a CodedRung,
# its section and its MSEs (the one format of worker processes and ranks alike).
_GOP_HEAD = struct.Struct("<qqI")
_RUNG_HEAD = struct.Struct("<iQQddQI32s")


def pack_gop(gi: int, n: int, rungs: dict[int, CodedRung]) -> bytes:
    parts = [_GOP_HEAD.pack(gi, n, len(rungs))]
    for q, r in rungs.items():
        mse = np.ascontiguousarray(r.mse, dtype="<f8")
        parts += [_RUNG_HEAD.pack(q, len(r.section), r.words, r.bits, r.lam, mse.size, r.rollbacks, r.source),
                  r.section, mse.tobytes()]
    return b"".join(parts)


def unpack_gop(data: bytes, gi: int, n: int, qualities: list[int], sender: str) -> dict[int, CodedRung]:
    """The rungs of GOP ``gi`` (``n`` frames) that ``sender`` (a rank, a worker) sent, in the
    order of ``qualities``; anything else is a NervcError."""
    def bad(why: str) -> NervcError:
        return NervcError(f"{sender} sent a malformed GOP {gi} ({why})")

    if len(data) < _GOP_HEAD.size:
        raise bad("short")
    got_gi, got_n, count = _GOP_HEAD.unpack_from(data)
    if (got_gi, got_n, count) != (gi, n, len(qualities)):
        raise bad(f"GOP {got_gi} of {got_n} frames with {count} rungs")
    pos, out = _GOP_HEAD.size, {}
    for _ in range(count):
        if pos + _RUNG_HEAD.size > len(data):
            raise bad("short")
        q, length, words, bits, lam, frames, rollbacks, source = _RUNG_HEAD.unpack_from(data, pos)
        pos += _RUNG_HEAD.size
        if q not in qualities or q in out or frames != n or pos + length + 8 * frames > len(data):
            raise bad("inconsistent rung")
        section = data[pos:pos + length]
        mse = np.frombuffer(data, "<f8", frames, pos + length).astype(np.float64)
        pos += length + 8 * frames
        out[q] = CodedRung(section, words, bits, lam, mse, rollbacks, source)
    if pos != len(data):
        raise bad("trailing bytes")
    return {q: out[q] for q in qualities}


# Worker processes (--jobs): the plan arrives once, per GOP only its frames go out and only its
# packed bytes come back.
_WORKER_PLAN: GopPlan | None = None


def _worker_start(plan: GopPlan) -> None:
    global _WORKER_PLAN
    _WORKER_PLAN = plan


def _worker_code_gop(chunk: np.ndarray, gi: int, first: int) -> bytes:
    return pack_gop(gi, len(chunk), code_gop(chunk, gi, first, _WORKER_PLAN))


def coded_gops(src: VideoSource, gop_frames: int, plan: GopPlan, jobs: int, rank: int, world: int,
               num_gops: int | None, progress: bool,
               kept: Sequence[dict[int, CodedRung]] = ()) -> Iterator[tuple[int, int, dict[int, CodedRung]]]:
    """``(gop index, frames, rungs)`` of the GOPs this rank owns (``index % world == rank``),
    in order, fitted here or by ``jobs`` worker processes; only the frames of the GOPs being
    fitted are in memory. ``kept``: the first GOPs' rungs as a resumed encode's partial file
    holds them (``codec.resume``, one rank): their source frames are decoded and checked, not
    fitted."""
    chunks = enumerate(src.chunks(gop_frames))
    for gi, rungs in enumerate(kept):
        _, chunk = next(chunks, (gi, None))
        check_kept_source(gi, chunk, rungs)
        yield gi, len(chunk), rungs

    def mine():
        for gi, chunk in chunks:
            if gi % world == rank:
                yield gi, chunk

    if jobs == 1:
        for gi, chunk in mine():
            label = "" if num_gops == 1 else f" GOP {gi + 1}" + (f"/{num_gops}" if num_gops else "")
            yield gi, len(chunk), code_gop(chunk, gi, gi * gop_frames, plan, progress=progress, label=label)
        return
    items = (((gi, len(chunk)), (chunk, gi, gi * gop_frames)) for gi, chunk in mine())
    for (gi, n), data in in_order_pool(items, jobs, _worker_code_gop, _worker_start, (plan,)):
        yield gi, n, unpack_gop(data, gi, n, list(plan.lams), "a --jobs worker")


def send_gops(own: Iterator[tuple[int, int, dict[int, CodedRung]]], link: RankLink) -> None:
    """A rank other than 0: fit this rank's GOPs and send each to rank 0, or the error."""
    try:
        for gi, n, rungs in own:
            link.send(pack_gop(gi, n, rungs))
    except Exception as e:
        try:
            link.send_error(str(e) or type(e).__name__)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise


def gather_gops(own, link: RankLink | None, num_gops: int | None, gop_frames: int,
                num_frames: int | None, qualities: list[int]) -> Iterator[tuple[int, int, dict[int, CodedRung]]]:
    """Rank 0: every GOP in order, its own ones fitted here, the others received."""
    if link is None or link.world == 1:
        yield from own
        return
    for gi in range(num_gops):
        src = gi % link.world
        if src == 0:
            yield next(own)
        else:
            n = min(gop_frames, num_frames - gi * gop_frames)
            yield gi, n, unpack_gop(link.recv(src), gi, n, qualities, f"rank {src}")
