"""GOPs fitted side by side: worker processes (``--jobs N``) and torch.distributed ranks
(``--distributed`` under torchrun).

GOPs are independent (each has its own network and seed, ``seed + gop index``), so the work
splits by GOP and the file is the same bytes however it was split. Everything that crosses a
process boundary on the way back is plain data: numpy arrays, bytes and numbers from worker
processes, uint8 tensors of serialized bytes between ranks (no ``gather_object``, no pickle).
"""
from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from nervcore.errors import NervcError

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

