"""Run the API with uvicorn: one process, or several sharing one listen socket.

With ``ENCORE_API_PROCESSES`` above 1 (unset: one per core) uvicorn's supervisor
binds the socket once and starts that many worker processes on it; each builds
its app with :func:`app_from_env` and runs its own lifespan (Redis pool, artifact
watcher, worker pool); the supervisor imports none of the app. SIGINT/SIGTERM to
the supervisor stops every worker before it exits; a worker that dies is restarted.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from models.settings import Settings, load_settings
from models.threads import limit_env, limit_loaded

if TYPE_CHECKING:
    from fastapi import FastAPI


SWITCH_INTERVAL_S = 0.001
"""The interpreter's GIL switch interval in API processes (default 5 ms). A worker
thread that comes back from a library call (a torch op, a FAISS search) waits up
to this long for the GIL while the event loop is busy; an encode makes hundreds
of such calls, so at 5 ms a busy loop slows it many times over."""


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline for request headers.

    uvicorn closes a connection that idles between requests (keep-alive timeout),
    but not one that opened and never finished its headers: a client that sends a
    byte now and then (slowloris) holds it for good. Here each connection must
    complete a request's headers within ``header_timeout_s`` of opening, and each
    further request within ``header_timeout_s`` of its first byte, or it is closed.
    """

    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def _tune_process(settings: Settings) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    limit_env(settings.api.native_threads)  # torch and anything else loaded later
    limit_loaded(settings.api.native_threads)
    HeaderTimeoutProtocol.header_timeout_s = settings.api.header_timeout_s


def processes(settings: Settings) -> int:
    """How many API processes to run: the setting, else one per core."""
    return settings.api.processes or os.cpu_count() or 1


def app_from_env() -> FastAPI:
    """The app of one worker process (settings read from the environment, as in the
    supervisor that started it)."""
    from api.app import create_app

    settings = load_settings()
    _tune_process(settings)
    return create_app(settings)


def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM."""
    options = {
        "host": settings.api.host,
        "port": settings.api.port,
        "log_level": "info",
        "access_log": False,
        "lifespan": "on",
        "http": "api.server:HeaderTimeoutProtocol",
    }
    n = processes(settings)
    if n == 1:
        from api.app import create_app

        _tune_process(settings)
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
    else:
        uvicorn.run("api.server:app_from_env", factory=True, workers=n, **options)  # type: ignore[arg-type]
