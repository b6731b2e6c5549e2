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

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api import metrics

T = TypeVar("T")
THREADS = 1
"""Worker threads per API process (each API process has its own pool). One: the
libraries release the GIL only for their inner loops, so every further thread
takes GIL time from the event loop; more throughput comes from more processes."""
RETRY_AFTER_S = 1
"""What an overloaded route tells the client to wait, in seconds."""


BUSY = "busy: the CPU-heavy jobs this process takes are all running or waiting; retry later"


class Overloaded(RuntimeError):
    """The pool is full: the request is refused rather than queued (503)."""


class WorkPool:
    """At most ``bound`` jobs running or waiting on ``threads`` worker threads."""

    def __init__(self, bound: int, threads: int = THREADS) -> None:
        self.bound = bound
        self.busy = 0  # jobs running or waiting
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="encore-work")

    def full(self) -> bool:
        """Whether a job submitted now would be refused."""
        return self.busy >= self.bound

    def _free(self, _future: Future[Any]) -> None:
        with self._lock:
            self.busy -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread; :class:`Overloaded` when the pool is full.

        A job whose request goes away before it starts is dropped (its slot freed)."""
        with self._lock:
            if self.busy >= self.bound:
                metrics.OVERLOADED.inc()
                raise Overloaded(BUSY)
            self.busy += 1
        try:
            future: Future[T] = self._executor.submit(fn, *args)
        except BaseException:
            self._free(Future())
            raise
        future.add_done_callback(self._free)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Drop waiting jobs; running ones finish on their own."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def overloaded_response() -> JSONResponse:
    """What a refused request gets."""
    return JSONResponse(
        {"detail": BUSY}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


class ShedWhenFull:
    """ASGI middleware: refuse the routes that always need the pool (``paths``) before
    their body is read or validated while the pool is full, so a flood of requests
    that would be refused anyway costs the event loop as little as possible."""

    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            res = getattr(scope["app"].state, "resources", None)
            if res is not None and res.engine.pool.full():
                metrics.OVERLOADED.inc()
                await overloaded_response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
