"""Ingest: validate events with the contract, produce them keyed correctly, answer 202.

Beyond the contract, the public route refuses (422 naming the field):

* an event dated more than ``ENCORE_STREAM_MAX_CLOCK_SKEW_S`` after this server's
  clock: folded, it would hold the listener's clocks past every later event;
* a ``file://`` link in any URL field: training reads local audio files and the
  API serves them, so only operators add those (from trusted roots);
* an ``audio_url`` on a loopback, private or link-local host: the link prober
  fetches every catalog audio link (:mod:`models.urls`).
"""

from __future__ import annotations

import logging
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
from models.urls import public_url_problem

log = logging.getLogger(__name__)
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


URL_FIELDS = ("audio_url", "permalink_url", "url", "redirect_url")
FETCHED = frozenset({"audio_url"})
"""URL fields the server fetches (the prober checks every catalog ``audio_url``)."""


def refuse_unsafe(res: Res, events: list[Any], where: tuple[str, ...]) -> None:
    """422 for events from the future and for links the public may not send.

    ``where`` is the body path of the events (``("events",)`` for a batch)."""
    limit = int((time.time() + res.settings.stream.max_clock_skew_s) * 1000)
    errors: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        loc = ("body", *where, *((i,) if where else ()))
        if e.occurred_ms > limit:
            msg = future_message(e, limit)
            errors.append(
                _error("future_timestamp", (*loc, "occurred_at"), msg, e.occurred_at.isoformat())
            )
        for name in URL_FIELDS:
            url = getattr(e, name, None)
            problem = url and public_url_problem(url, fetched=name in FETCHED)
            if problem:
                errors.append(_error("url_refused", (*loc, name), problem, url))
    if errors:
        metrics.REJECTED.labels("422").inc()
        raise RequestValidationError(errors)


def _error(kind: str, loc: tuple[Any, ...], msg: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg, "input": str(value)}


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
        log.warning("broker did not acknowledge: %s", exc)  # the client gets no internals
        raise HTTPException(
            503,
            "the event broker did not acknowledge; retry later",
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
    refuse_unsafe(res, [event], ())
    return await _produce(res, [event])


@router.post(
    "/events/batch",
    status_code=202,
    response_model=Accepted,
    summary="Send many events; grouped into one record per partition",
)
async def ingest_batch(res: Res, body: EventsBody) -> Accepted:
    refuse_unsafe(res, list(body.events), ("events",))
    return await _produce(res, list(body.events))
