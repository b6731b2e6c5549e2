"""Bytes <-> events. Bad input is a value (:class:`Rejected`), never an exception.

A Kafka record holds one event or a batch envelope. :func:`decode_record` returns
the valid events and one :class:`Rejected` per bad part, with a reason code, a
message that names the offending field, and the original bytes, ready for the
dead-letter topic.

An event dated later than its record allows (:func:`not_after_ms`: the time the
record was sent plus the allowed clock skew) is rejected as ``future_timestamp``:
folded, it would move the listener's clocks past every later event.

An interaction whose ``context`` names a bandit arm this code does not know is
kept without its context (:func:`drop_unknown_arms`): the play, skip or like
still counts, only the link to a recommendation is lost, and it is counted.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from models.bandit import ARMS
from models.events import (
    MAX_BATCH_EVENTS,
    RECORD_ADAPTER,
    SCHEMA_VERSION,
    EventBatch,
    ServedList,
    event_to_dict,
    parse_event,
)


class Reason(enum.StrEnum):
    """Why a record (or one event of a batch) went to the dead-letter topic."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    SCHEMA_VIOLATION = "schema_violation"
    OVERSIZE = "oversize"
    WRONG_PARTITION = "wrong_partition"
    WRONG_TOPIC = "wrong_topic"
    UNRESOLVABLE_REFERENCE = "unresolvable_reference"  # older dead letters (unknown arms)
    FUTURE_TIMESTAMP = "future_timestamp"


@dataclass(frozen=True, slots=True)
class Rejected:
    """One bad record or batch member, with the bytes exactly as received."""

    reason: Reason
    error: str
    raw: bytes


@dataclass(slots=True)
class Decoded:
    """Result of decoding one record: valid events and rejected parts, in order, and how
    many interactions lost a context that named an unknown bandit arm."""

    events: list[Any] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    dropped_contexts: int = 0


def drop_unknown_arms(out: Decoded, without_context: Callable[[Any], Any]) -> None:
    """Replace each interaction whose context names an unknown arm by its copy without
    the context (``without_context``), and count it in ``out.dropped_contexts``.

    Such a context cannot be credited to any arm, but the event is still the
    listener's play, skip or like: dead-lettering it whole would lose that."""
    events = out.events
    for i, e in enumerate(events):
        ctx = getattr(e, "context", None)
        if ctx is not None and ctx.arm not in ARMS:
            events[i] = without_context(e)
            out.dropped_contexts += 1


def _model_without_context(event: Any) -> Any:
    return event.model_copy(update={"context": None})


def describe_validation_error(exc: ValidationError) -> str:
    """``field.path: message`` for each problem, joined with ``; ``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _classify(exc: ValidationError) -> Reason:
    for err in exc.errors(include_url=False):
        if err["type"] == "union_tag_invalid":
            return Reason.UNKNOWN_TYPE
        if err["loc"] and err["loc"][-1] == "schema_version":
            return Reason.UNSUPPORTED_VERSION
    return Reason.SCHEMA_VIOLATION


def not_after_ms(sent_ms: int | None, now_ms: int, skew_ms: int) -> int:
    """The latest event time a record sent at ``sent_ms`` may carry: that time plus the skew.

    The send time is the record's broker timestamp, kept in the log, so a replay
    decides exactly as the live worker did. A record without one, or with one ahead
    of ``now_ms`` (a producer whose clock runs fast), is measured from ``now_ms``."""
    sent = sent_ms if sent_ms is not None and 0 < sent_ms <= now_ms else now_ms
    return sent + skew_ms


def future_message(event: Any, limit_ms: int) -> str:
    """Why an event dated after ``limit_ms`` is refused (the field, ``occurred_at``, aside)."""
    limit = datetime.fromtimestamp(limit_ms / 1000, UTC).isoformat(timespec="milliseconds")
    return (
        f"{event.occurred_at.isoformat()} is in the future: events may be dated at most "
        f"the allowed clock skew after they are sent (here {limit})"
    )


def _validate(obj: Any, raw: bytes, out: Decoded, limit_ms: int | None) -> None:
    if not isinstance(obj, dict):
        out.rejected.append(Rejected(Reason.NOT_OBJECT, "an event must be a JSON object", raw))
        return
    try:
        event = parse_event(obj)
    except ValidationError as exc:
        out.rejected.append(Rejected(_classify(exc), describe_validation_error(exc), raw))
        return
    if limit_ms is not None and event.occurred_ms > limit_ms:
        msg = f"occurred_at: {future_message(event, limit_ms)}"
        out.rejected.append(Rejected(Reason.FUTURE_TIMESTAMP, msg, raw))
    else:
        out.events.append(event)


def decode_record(raw: bytes | None, *, max_bytes: int, not_after_ms: int | None = None) -> Decoded:
    """Decode one Kafka record value into events; never raises on bad input.

    With ``not_after_ms``, an event dated later is rejected as ``future_timestamp``
    (its own bytes for a batch member, as for any other rejected member). A context
    naming an unknown arm is dropped from its event (:func:`drop_unknown_arms`)."""
    out = _decode(raw, max_bytes, not_after_ms)
    drop_unknown_arms(out, _model_without_context)
    return out


def _decode(raw: bytes | None, max_bytes: int, not_after_ms: int | None) -> Decoded:
    out = Decoded()
    if raw is None:
        out.rejected.append(Rejected(Reason.NOT_JSON, "record has no value", b""))
        return out
    if len(raw) > max_bytes:
        msg = f"record is {len(raw)} bytes; the limit is {max_bytes}"
        out.rejected.append(Rejected(Reason.OVERSIZE, msg, raw))
        return out
    try:  # fast path: a valid record validates in one pass from bytes
        record = RECORD_ADAPTER.validate_json(raw)
    except ValidationError:
        pass  # slow path below says exactly what is wrong with which part
    else:
        events = record.events if isinstance(record, EventBatch) else [record]
        if not_after_ms is None or all(e.occurred_ms <= not_after_ms for e in events):
            out.events.extend(events)
            return out
        # an event from the future: the slow path rejects just that part, with its bytes
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        out.rejected.append(Rejected(Reason.NOT_JSON, f"not JSON: {exc}", raw))
        return out
    if isinstance(obj, dict) and obj.get("type") == "batch":
        _decode_batch(obj, raw, out, not_after_ms)
    else:
        _validate(obj, raw, out, not_after_ms)
    return out


def decode_served(raw: bytes | None, *, max_bytes: int) -> Decoded:
    """Decode one ``recommendations`` record (a :class:`ServedList`); never raises."""
    out = Decoded()
    if raw is None:
        out.rejected.append(Rejected(Reason.NOT_JSON, "record has no value", b""))
    elif len(raw) > max_bytes:
        msg = f"record is {len(raw)} bytes; the limit is {max_bytes}"
        out.rejected.append(Rejected(Reason.OVERSIZE, msg, raw))
    else:
        try:
            out.events.append(ServedList.model_validate_json(raw))
        except ValidationError as exc:
            out.rejected.append(Rejected(_classify(exc), describe_validation_error(exc), raw))
    return out


def _decode_batch(obj: dict[str, Any], raw: bytes, out: Decoded, limit_ms: int | None) -> None:
    version = obj.get("schema_version", SCHEMA_VERSION)
    members = obj.get("events")
    extra = set(obj) - {"type", "schema_version", "events"}
    if version != SCHEMA_VERSION:
        msg = f"schema_version: batch version {version!r} is not supported (expected 1)"
        out.rejected.append(Rejected(Reason.UNSUPPORTED_VERSION, msg, raw))
    elif extra:
        msg = f"{sorted(extra)[0]}: extra inputs are not permitted in a batch"
        out.rejected.append(Rejected(Reason.SCHEMA_VIOLATION, msg, raw))
    elif not isinstance(members, list) or not members:
        msg = "events: a batch needs a non-empty list of events"
        out.rejected.append(Rejected(Reason.SCHEMA_VIOLATION, msg, raw))
    elif len(members) > MAX_BATCH_EVENTS:
        msg = f"events: {len(members)} events; a batch holds at most {MAX_BATCH_EVENTS}"
        out.rejected.append(Rejected(Reason.OVERSIZE, msg, raw))
    else:
        for member in members:
            _validate(member, orjson.dumps(member), out, limit_ms)


def encode_event(event: BaseModel) -> bytes:
    """One event as a record value."""
    return orjson.dumps(event_to_dict(event))


def encode_batch(events: Iterable[BaseModel | dict[str, Any]]) -> bytes:
    """Many events (models or their JSON dicts) as one batch record value."""
    members = [e if isinstance(e, dict) else event_to_dict(e) for e in events]
    return orjson.dumps({"type": "batch", "schema_version": SCHEMA_VERSION, "events": members})


def dlq_record(
    rejected: Rejected, *, topic: str, partition: int, offset: int, member: int = 0
) -> bytes:
    """Dead-letter record value: reason, error text, origin and the original bytes.

    ``(topic, partition, offset, member)`` identifies the bad part uniquely, so a
    dead letter sent twice (a crash between send and commit) can be recognised."""
    text = _is_utf8(rejected.raw)
    return orjson.dumps(
        {
            "reason": rejected.reason.value,
            "error": rejected.error,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "member": member,
            "raw": rejected.raw.decode("utf-8") if text else None,
            "raw_hex": None if text else rejected.raw.hex(),
        }
    )


def dlq_original(value: bytes) -> bytes:
    """The original bytes of a dead-letter record (for redrive)."""
    obj = orjson.loads(value)
    if obj.get("raw") is not None:
        return str(obj["raw"]).encode("utf-8")
    return bytes.fromhex(obj.get("raw_hex") or "")


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def split_rejected(decoded: Sequence[Decoded]) -> tuple[list[Any], list[Rejected]]:
    """Flatten several decode results into (events, rejected)."""
    events: list[Any] = []
    rejected: list[Rejected] = []
    for d in decoded:
        events.extend(d.events)
        rejected.extend(d.rejected)
    return events, rejected
