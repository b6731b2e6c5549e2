"""Ingest on a real broker: 202 with ids and records on the right partitions, 401, 413,
422 naming the field, 503 with Retry-After when the broker is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi.testclient import TestClient

from api.app import create_app
from encore.services import Proc, create_topics, start_broker
from models.codec import decode_record
from models.events import event_to_dict
from models.settings import ApiSettings, ArtifactSettings, KafkaSettings, Settings
from models.topics import INTERACTIONS, all_topics, key_of, partition_for, topic_of
from tests.samples import every_event_type

P = 6
KEY = {"X-API-Key": "dev-ingest-key"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Proc]:
    proc = start_broker(tmp_path, name="ingest-broker")
    asyncio.run(create_topics(proc.address, all_topics(), P))
    yield proc
    proc.stop()


def _client(bootstrap: str, tmp: Path) -> TestClient:
    settings = Settings(
        kafka=KafkaSettings(bootstrap=bootstrap, partitions=P),
        artifacts=ArtifactSettings(root=tmp / "none"),
        api=ApiSettings(max_request_bytes=200_000),
    )
    return TestClient(create_app(settings))


def _wait_producer(client: TestClient) -> None:
    for _ in range(100):
        if client.app.state.resources.producer is not None:  # type: ignore[attr-defined]
            return
        asyncio.run(asyncio.sleep(0.05))
    raise AssertionError("producer did not connect")


async def _read_all(bootstrap: str, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        *["tracks", "link-health", INTERACTIONS],
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[Any] = []
    try:
        async with asyncio.timeout(20):
            while sum(len(decode_record(r.value, max_bytes=2**20).events) for r in out) < n:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    out.extend(records)
    finally:
        await consumer.stop()
    return out


def test_events_are_validated_and_produced_to_the_right_partition(
    broker: Proc, tmp_path: Path
) -> None:
    events = every_event_type(1) + every_event_type(2)
    with _client(broker.address, tmp_path) as client:
        _wait_producer(client)
        one = client.post("/v1/events", json=event_to_dict(events[1]), headers=KEY)
        assert one.status_code == 202, one.text
        assert one.json()["event_ids"] == [events[1].event_id]
        many = client.post(
            "/v1/events/batch", headers=KEY, json={"events": [event_to_dict(e) for e in events]}
        )
        assert many.status_code == 202, many.text
        assert many.json()["accepted"] == len(events)
    records = asyncio.run(_read_all(broker.address, len(events) + 1))
    seen = []
    for r in records:
        for e in decode_record(r.value, max_bytes=2**20).events:
            assert r.topic == topic_of(e)
            assert r.partition == partition_for(key_of(e), P)
            seen.append(e.event_id)
    assert sorted(seen) == sorted([events[1].event_id] + [e.event_id for e in events])


def test_refusals_say_what_is_wrong(broker: Proc, tmp_path: Path) -> None:
    good = event_to_dict(every_event_type()[1])
    with _client(broker.address, tmp_path) as client:
        _wait_producer(client)
        assert client.post("/v1/events", json=good).status_code == 401
        assert (
            client.post("/v1/events", json=good, headers={"X-API-Key": "wrong"}).status_code == 401
        )
        bad = client.post("/v1/events", json={**good, "ms_played": -4}, headers=KEY)
        assert bad.status_code == 422
        assert "ms_played" in orjson.dumps(bad.json()["detail"]).decode()
        unknown = client.post("/v1/events", json={**good, "type": "scrobble"}, headers=KEY)
        assert unknown.status_code == 422
        big = client.post("/v1/events/batch", headers=KEY, json={"events": [good] * 2_000})
        assert big.status_code == 413


def test_events_dated_past_the_clock_skew_get_422_naming_occurred_at(
    broker: Proc, tmp_path: Path
) -> None:
    play = event_to_dict(every_event_type()[1])
    now = datetime.now(UTC)
    soon = {**play, "event_id": "soon", "occurred_at": (now + timedelta(minutes=4)).isoformat()}
    late = {**play, "event_id": "late", "occurred_at": (now + timedelta(minutes=6)).isoformat()}
    far = {**play, "event_id": "far", "occurred_at": "9999-12-31T23:59:59Z"}
    with _client(broker.address, tmp_path) as client:
        _wait_producer(client)
        for doc in (late, far):
            r = client.post("/v1/events", json=doc, headers=KEY)
            assert r.status_code == 422, r.text
            [err] = r.json()["detail"]
            assert (err["type"], err["loc"]) == ("future_timestamp", ["body", "occurred_at"])
        r = client.post("/v1/events/batch", json={"events": [soon, far, play]}, headers=KEY)
        assert r.status_code == 422  # nothing of the request is produced
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "events", 1, "occurred_at"]]
        ok = client.post("/v1/events", json=soon, headers=KEY)  # inside the 5 minutes
        assert ok.status_code == 202, ok.text
    got = [e.event_id for r in asyncio.run(_read_all(broker.address, 1)) for e in _events(r)]
    assert got == ["soon"]


def _events(record: Any) -> list[Any]:
    return decode_record(record.value, max_bytes=2**20).events


def test_broker_gone_means_503_with_retry_after_never_a_silent_drop(
    broker: Proc, tmp_path: Path
) -> None:
    good = event_to_dict(every_event_type()[1])
    with _client(broker.address, tmp_path) as client:
        _wait_producer(client)
        broker.stop()
        r = client.post("/v1/events", json=good, headers=KEY)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "5"
    with _client("127.0.0.1:1", tmp_path) as client:
        r = client.post("/v1/events", json=good, headers=KEY)
        assert r.status_code == 503
        assert "not reachable" in r.text
