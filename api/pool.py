"""A bounded worker pool for the CPU-heavy parts of requests, off the event loop.

Query text encoding (torch), retrieval over the item arrays and indices (numpy
BLAS, FAISS) and audio decoding (libsndfile, scipy) release the GIL while they
compute, so a few threads run them while the event loop keeps answering
``/healthz`` and the personal route. Jobs running or waiting are bounded
(``ENCORE_API_WORK_QUEUE``): past the bound :meth:`WorkPool.run` raises
:class:`Overloaded` at once, and the app answers 503 with ``Retry-After``
instead of letting requests pile up behind the pool.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from api import metrics

T = TypeVar("T")
THREADS = 1
"""Worker threads per API process (each API process has its own pool). One: the
libraries release the GIL only for their inner loops, so every further thread
takes GIL time from the event loop; more throughput comes from more processes."""
RETRY_AFTER_S = 1
"""What an overloaded route tells the client to wait, in seconds."""


class Overloaded(RuntimeError):
    """The pool is full: the request is refused rather than queued (503)."""


class WorkPool:
    """At most ``bound`` jobs running or waiting on ``threads`` worker threads."""

    def __init__(self, bound: int, threads: int = THREADS) -> None:
        self.bound = bound
        self._slots = threading.BoundedSemaphore(bound)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="encore-work")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread; :class:`Overloaded` when the pool is full.

        A job whose request goes away before it starts is dropped (its slot freed)."""
        if not self._slots.acquire(blocking=False):
            metrics.OVERLOADED.inc()
            raise Overloaded(f"busy: {self.bound} CPU-heavy jobs already running or waiting")
        try:
            future: Future[T] = self._executor.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Drop waiting jobs; running ones finish on their own."""
        self._executor.shutdown(wait=False, cancel_futures=True)
