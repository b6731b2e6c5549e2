"""The FastAPI application factory; the lifespan owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from api import docs, metrics
from api.bundle import Bundle, BundleWatcher
from api.pool import Overloaded, ShedWhenFull, WorkPool, overloaded_response
from api.query import QueryEmbedder
from api.reader import Reader
from api.recommend import Engine
from api.routes import admin, ingest, recs, web
from api.routes import ops as ops_routes
from api.security import SecurityHeaders
from api.served import ServedLog
from api.state import Resources
from api.validation import validation_response
from models.io.artifacts import remote_of
from models.io.producer import BrokerUnavailable, EventProducer
from models.io.redis_store import RedisStore, connect
from models.io.vectors import serving_stores
from models.settings import Settings
from models.state import fold_config

log = logging.getLogger(__name__)


async def _keep_producer(res: Resources) -> None:
    """Connect the producer, retrying until the broker answers (ingest says 503 meanwhile)."""
    s = res.settings
    if not s.kafka.bootstrap:
        return
    delay = 0.5
    while res.producer is None:
        producer = EventProducer(
            s.kafka.bootstrap,
            s.kafka.partitions,
            max_record_bytes=s.kafka.max_record_bytes,
            request_timeout_ms=s.kafka.request_timeout_ms,
        )
        try:
            await producer.start()
            res.producer = producer
        except BrokerUnavailable as exc:
            log.warning("broker not reachable yet: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def build_resources(settings: Settings) -> Resources:
    """Resources without connections (connections open lazily on first use)."""
    res = Resources(settings, bundle=Bundle())
    pool = WorkPool(settings.api.work_queue)
    reader = None
    if settings.redis.url is not None:
        res.redis = connect(
            settings.redis.url.get_secret_value(),
            cluster=settings.redis.cluster,
            timeout_s=settings.api.dependency_timeout_s,
            max_connections=settings.redis.max_connections,
        )
        res.store = RedisStore(res.redis)
        reader = Reader(
            res.store,
            settings.redis.key_prefix,
            settings.kafka.partitions,
            trending_bucket_s=settings.stream.trending_bucket_s,
            trending_window_s=settings.stream.trending_window_s,
            shared_max_age_s=settings.api.shared_cache_s,
        )
    res.engine = Engine(
        reader,
        fold_config(settings),
        settings.api.dependency_timeout_s,
        settings.api.mmr_lambda,
        settings.api.artist_gap,
        pool,
        taste_weight=settings.api.taste_weight,
        taste_k=settings.api.taste_candidates,
    )
    res.embedder = QueryEmbedder(pool)
    return res


class EncoreAPI(FastAPI):
    """FastAPI with :class:`api.security.SecurityHeaders` around everything, so every
    response carries them, an unhandled error's 500 included."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


async def _warm_up(embedder: QueryEmbedder) -> None:
    """Load the text model before the first query needs it, then freeze what it loaded
    (torch and transformers: some 400,000 objects here) out of the cycle collector's
    way: left in, the next full collection walked them all and held the event loop for
    about 200 ms."""
    await embedder.embed("warm up")
    gc.freeze()


def create_app(settings: Settings, resources: Resources | None = None) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        res = resources or build_resources(settings)
        app.state.resources = res
        watcher = BundleWatcher(
            res,
            Path(settings.artifacts.root),
            settings.artifacts.keep_versions,
            retry_s=settings.artifacts.watch_interval_s,
            retry_max_s=settings.artifacts.retry_max_s,
            remote=remote_of(settings.artifacts),
            vector_stores=serving_stores(settings),
        )
        await watcher.check()
        tasks = [
            asyncio.create_task(watcher.run(settings.artifacts.watch_interval_s)),
            asyncio.create_task(_keep_producer(res)),
        ]
        if res.embedder is not None and res.embedder.model.available():
            tasks.append(asyncio.create_task(_warm_up(res.embedder)))
        if res.served is None and settings.kafka.bootstrap:
            res.served = ServedLog(res)
        if res.served is not None:
            tasks.append(asyncio.create_task(res.served.run()))
        res.extras["watcher"] = watcher
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            retrain = res.extras.get("retrain")
            if retrain is not None and retrain.returncode is None:
                retrain.terminate()  # a retrain started from the API stops with it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(retrain.wait(), 10)
            if res.served is not None:
                await res.served.flush(2.0)
            if res.producer is not None:
                await res.producer.stop()
            if res.store is not None:
                await res.store.close()
            res.engine.pool.close()

    app = EncoreAPI(
        title="Encore",
        version="1",
        description="Streaming music recommendations that adapt to every play, skip and like.",
        lifespan=lifespan,
        docs_url=None,  # api.docs serves /docs without third-party scripts
        redoc_url=None,
    )
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )

    @app.middleware("http")
    async def limit_and_measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        limit = settings.api.max_request_bytes
        if request.url.path == "/v1/identify":
            limit = settings.api.max_upload_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            metrics.REJECTED.labels("413").inc()
            return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
        if length is None and request.method in ("POST", "PUT", "PATCH"):
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    metrics.REJECTED.labels("413").inc()
                    return JSONResponse(
                        {"detail": f"request body over {limit} bytes"}, status_code=413
                    )
            request._body = body  # the stream is consumed; hand the body on
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.HTTP_SECONDS.labels(path, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    app.add_exception_handler(RequestValidationError, validation_response)

    @app.exception_handler(Overloaded)
    async def overloaded(_request: Request, _exc: Overloaded) -> Response:
        return overloaded_response()

    app.add_middleware(ShedWhenFull, paths=frozenset({"/v1/recommend", "/v1/identify"}))

    app.include_router(ops_routes.router)
    app.include_router(recs.router)
    app.include_router(ingest.router)
    app.include_router(admin.router)
    app.include_router(web.router)
    app.include_router(docs.router)
    return app
