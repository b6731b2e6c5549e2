"""Ingest: validate events with the contract, produce them keyed correctly, answer 202.

Beyond the contract, an event dated more than ``ENCORE_STREAM_MAX_CLOCK_SKEW_S``
after this server's clock is refused (422 naming ``occurred_at``): folded, it
would hold the listener's clocks past every later event.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from api import metrics
from api.deps import IngestAccess, Res
from api.validation import StrictJSONRoute
from models.codec import future_message
from models.events import MAX_BATCH_EVENTS, Event
from models.io.producer import BrokerUnavailable

router = APIRouter(
    prefix="/v1", tags=["ingest"], dependencies=[IngestAccess], route_class=StrictJSONRoute
)
RETRY_AFTER_S = 5


class Accepted(BaseModel):
    """Events accepted for processing."""

    accepted: int
    event_ids: list[str]
    records: int


class EventsBody(BaseModel):
    """Many events in one request (any mix of types)."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


def refuse_future(res: Res, events: list[Any], where: tuple[str, ...]) -> None:
    """422 for events dated later than now plus the allowed clock skew.

    ``where`` is the body path of the events (``("events",)`` for a batch)."""
    limit = int((time.time() + res.settings.stream.max_clock_skew_s) * 1000)
    errors = [
        {
            "type": "future_timestamp",
            "loc": ("body", *where, *((i,) if where else ()), "occurred_at"),
            "msg": future_message(e, limit),
            "input": e.occurred_at.isoformat(),
        }
        for i, e in enumerate(events)
        if e.occurred_ms > limit
    ]
    if errors:
        metrics.REJECTED.labels("422").inc()
        raise RequestValidationError(errors)


async def _produce(res: Res, events: list[Any]) -> Accepted:
    producer = res.producer
    if producer is None:
        metrics.REJECTED.labels("503").inc()
        raise HTTPException(
            503,
            "the event broker is not reachable; retry later",
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        records = await producer.send_events(events)
    except BrokerUnavailable as exc:
        metrics.REJECTED.labels("503").inc()
        raise HTTPException(
            503,
            f"the event broker did not acknowledge: {exc}; retry later",
            {"Retry-After": str(RETRY_AFTER_S)},
        ) from exc
    for e in events:
        metrics.INGESTED.labels(e.type).inc()
    return Accepted(accepted=len(events), event_ids=[e.event_id for e in events], records=records)


@router.post(
    "/events",
    status_code=202,
    response_model=Accepted,
    summary="Send one event (validated, then produced to its topic)",
)
async def ingest_one(res: Res, event: Annotated[Event, Body()]) -> Accepted:
    refuse_future(res, [event], ())
    return await _produce(res, [event])


@router.post(
    "/events/batch",
    status_code=202,
    response_model=Accepted,
    summary="Send many events; grouped into one record per partition",
)
async def ingest_batch(res: Res, body: EventsBody) -> Accepted:
    refuse_future(res, list(body.events), ("events",))
    return await _produce(res, list(body.events))
