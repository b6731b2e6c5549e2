"""The FastAPI application factory; the lifespan owns every resource."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from api.routes import ops as ops_routes
from api.state import Resources
from models.io.redis_store import RedisStore, connect
from models.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        res = Resources(settings)
        if settings.redis.url is not None:
            res.redis = connect(
                settings.redis.url.get_secret_value(),
                cluster=settings.redis.cluster,
                timeout_s=settings.api.dependency_timeout_s,
                max_connections=settings.redis.max_connections,
            )
            res.store = RedisStore(res.redis)
        app.state.resources = res
        try:
            yield
        finally:
            if res.store is not None:
                await res.store.close()

    app = FastAPI(
        title="Encore",
        version="1",
        description="Streaming music recommendations that adapt to every play, skip and like.",
        lifespan=lifespan,
    )
    app.include_router(ops_routes.router)
    return app
