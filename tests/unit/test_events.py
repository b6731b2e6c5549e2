"""The event contract: round trips, clear errors, batches, schema."""

from __future__ import annotations

import jsonschema_rs
import orjson
import pytest

from models.codec import Reason, decode_record, dlq_original, dlq_record, encode_batch, encode_event
from models.events import EVENT_TYPES, Play, json_schema
from tests.samples import every_event_type

LIMIT = 1_048_576


def test_every_type_round_trips_through_bytes() -> None:
    events = every_event_type()
    assert {e.type for e in events} == EVENT_TYPES
    for event in events:
        decoded = decode_record(encode_event(event), max_bytes=LIMIT)
        assert decoded.rejected == []
        assert decoded.events == [event]


def test_batch_envelope_carries_many_events_and_keeps_order() -> None:
    events = every_event_type(1) + every_event_type(2)
    decoded = decode_record(encode_batch(events), max_bytes=LIMIT)
    assert decoded.events == events


def test_malformed_event_is_rejected_naming_the_field() -> None:
    bad = encode_event(every_event_type()[1]).replace(b'"ms_played":180000', b'"ms_played":-1')
    decoded = decode_record(bad, max_bytes=LIMIT)
    assert decoded.events == []
    [rejected] = decoded.rejected
    assert rejected.reason is Reason.SCHEMA_VIOLATION
    assert "ms_played" in rejected.error
    assert "greater than or equal to 0" in rejected.error
    assert rejected.raw == bad


@pytest.mark.parametrize(
    ("raw", "reason", "needle"),
    [
        (b"\xff\xfe not json", Reason.NOT_JSON, "not JSON"),
        (b"[1, 2]", Reason.NOT_OBJECT, "JSON object"),
        (b'{"type": "scrobble", "event_id": "x"}', Reason.UNKNOWN_TYPE, "scrobble"),
        (
            b'{"type": "like", "schema_version": 9, "event_id": "x", "user_id": "u",'
            b' "track_id": "t", "occurred_at": "2024-01-01T00:00:00Z"}',
            Reason.UNSUPPORTED_VERSION,
            "schema_version",
        ),
        (
            b'{"type": "like", "event_id": "x", "user_id": "u", "track_id": "t",'
            b' "occurred_at": "2024-01-01T00:00:00"}',
            Reason.SCHEMA_VIOLATION,
            "occurred_at",
        ),
        (
            b'{"type": "like", "event_id": "x", "user_id": "u u", "track_id": "t",'
            b' "occurred_at": "2024-01-01T00:00:00Z"}',
            Reason.SCHEMA_VIOLATION,
            "user_id",
        ),
        (
            b'{"type": "play", "event_id": "x", "user_id": "u", "track_id": "t",'
            b' "occurred_at": "2024-01-01T00:00:00Z", "ms_played": 5}',
            Reason.SCHEMA_VIOLATION,
            "duration_ms or completion",
        ),
        (b'{"type": "batch", "events": []}', Reason.SCHEMA_VIOLATION, "non-empty"),
    ],
)
def test_each_kind_of_bad_input_gets_its_reason(raw: bytes, reason: Reason, needle: str) -> None:
    decoded = decode_record(raw, max_bytes=LIMIT)
    assert decoded.events == []
    assert [r.reason for r in decoded.rejected] == [reason]
    assert needle in decoded.rejected[0].error
    assert decoded.rejected[0].raw == raw


def test_oversize_record_is_rejected_before_parsing() -> None:
    raw = encode_event(every_event_type()[0])
    decoded = decode_record(raw, max_bytes=len(raw) - 1)
    assert [r.reason for r in decoded.rejected] == [Reason.OVERSIZE]


def test_bad_member_of_a_batch_is_rejected_alone() -> None:
    good = [orjson.loads(encode_event(e)) for e in every_event_type()]
    bad = {**good[1], "ms_played": "lots"}
    decoded = decode_record(encode_batch([good[0], bad, good[2]]), max_bytes=LIMIT)
    assert [e.event_id for e in decoded.events] == [good[0]["event_id"], good[2]["event_id"]]
    [rejected] = decoded.rejected
    assert orjson.loads(rejected.raw) == bad
    assert "ms_played" in rejected.error


def test_dead_letter_keeps_the_original_bytes_even_when_binary() -> None:
    for raw in (b'{"type": "nope"}', b"\x00\xff\x10binary"):
        [rejected] = decode_record(raw, max_bytes=LIMIT).rejected
        value = dlq_record(rejected, topic="interactions", partition=3, offset=42)
        doc = orjson.loads(value)
        assert doc["reason"] == rejected.reason.value
        assert (doc["topic"], doc["partition"], doc["offset"]) == ("interactions", 3, 42)
        assert dlq_original(value) == raw


def test_play_completion_from_duration_or_given() -> None:
    play = every_event_type()[1]
    assert isinstance(play, Play)
    assert play.completion_ratio == pytest.approx(0.9)
    assert play.model_copy(update={"completion": 0.3}).completion_ratio == 0.3


def test_generated_json_schema_accepts_valid_records_and_refuses_bad_ones() -> None:
    validator = jsonschema_rs.validator_for(json_schema())
    for event in every_event_type():
        assert validator.is_valid(orjson.loads(encode_event(event)))
    assert validator.is_valid(orjson.loads(encode_batch(every_event_type())))
    bad = orjson.loads(encode_event(every_event_type()[1]))
    bad["ms_played"] = -5
    assert not validator.is_valid(bad)
    assert not validator.is_valid({"type": "scrobble"})
