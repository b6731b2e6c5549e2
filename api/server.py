"""Run the API with uvicorn."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from models.settings import Settings


def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM."""
    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_level="info",
        access_log=False,
        lifespan="on",
    )
