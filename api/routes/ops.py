"""Operations routes: liveness, readiness, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Res
from api.reader import bounded
from api.validation import StrictJSONRoute

router = APIRouter(tags=["operations"], route_class=StrictJSONRoute)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Redis reachable, artifacts loaded, lag under limit")
async def readyz(res: Res) -> Response:
    checks: dict[str, object] = {}
    reader = res.engine.reader if res.engine else None
    redis_ok = False
    if res.store is not None:
        try:
            redis_ok = bool(await bounded(res.store.ping(), res.settings.api.dependency_timeout_s))
        except TimeoutError:
            redis_ok = False
    checks["redis"] = redis_ok
    checks["artifacts"] = {k: v is not None for k, v in res.bundle.versions().items()}
    lag = 0
    if reader is not None and redis_ok:
        lag = sum((await reader.lag()).values())
    checks["lag"] = lag
    checks["broker"] = res.producer is not None  # informational: ingest answers 503 without it
    ready = redis_ok and res.bundle.collab is not None and lag <= res.settings.api.ready_max_lag
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
