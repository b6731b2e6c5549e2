"""Run the API with uvicorn: one process, or several sharing one listen socket.

With ``ENCORE_API_PROCESSES`` above 1 (unset: one per core) uvicorn's supervisor
binds the socket once and starts that many worker processes on it; each builds
its app with :func:`app_from_env` and runs its own lifespan (Redis pool, artifact
watcher, worker pool); the supervisor imports none of the app. SIGINT/SIGTERM to
the supervisor stops every worker before it exits; a worker that dies is restarted.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import uvicorn

from models.settings import Settings, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI


SWITCH_INTERVAL_S = 0.001
"""The interpreter's GIL switch interval in API processes (default 5 ms). A worker
thread that comes back from a library call (a torch op, a FAISS search) waits up
to this long for the GIL while the event loop is busy; an encode makes hundreds
of such calls, so at 5 ms a busy loop slows it many times over."""


def _tune_process() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def processes(settings: Settings) -> int:
    """How many API processes to run: the setting, else one per core."""
    return settings.api.processes or os.cpu_count() or 1


def app_from_env() -> FastAPI:
    """The app of one worker process (settings read from the environment, as in the
    supervisor that started it)."""
    from api.app import create_app

    _tune_process()
    return create_app(load_settings())


def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM."""
    options = {
        "host": settings.api.host,
        "port": settings.api.port,
        "log_level": "info",
        "access_log": False,
        "lifespan": "on",
    }
    n = processes(settings)
    if n == 1:
        from api.app import create_app

        _tune_process()
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
    else:
        uvicorn.run("api.server:app_from_env", factory=True, workers=n, **options)  # type: ignore[arg-type]
