"""Local audio on real Redis: served by track id from trusted roots only, and no response
(track page, recommendations, playlist) carries a server path or a ``file://`` link."""

from __future__ import annotations

import asyncio
import io
import wave
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from encore.services import Proc
from models.codec import encode_batch
from models.events import NewTrack
from models.io.redis_store import RedisStore, connect
from models.settings import (
    ArtifactSettings,
    AudioSettings,
    KafkaSettings,
    RedisSettings,
    Settings,
)
from models.topics import TRACKS, partition_for
from streams.applier import Record
from streams.wiring import build_applier, discard_dead_letters
from tests.streamkit import redis_db_url

P = 6
XSPF = "{http://xspf.org/ns/0/}"


@dataclass
class Stack:
    client: TestClient
    root: Path
    outside: Path
    song: bytes


def _wav(path: Path) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8_000)
        w.writeframes((np.sin(np.arange(8_000) / 3) * 9_000).astype("<i2").tobytes())
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


async def _catalog(settings: Settings, tracks: list[NewTrack]) -> None:
    store = RedisStore(connect(settings.redis.url.get_secret_value()))  # type: ignore[union-attr]
    applier = build_applier(settings, store, discard_dead_letters)
    by_part: dict[int, list[NewTrack]] = {}
    for t in tracks:
        by_part.setdefault(partition_for(t.track_id, P), []).append(t)
    for part, batch in by_part.items():
        await applier.apply(TRACKS, part, [Record(0, encode_batch(batch))])
    await store.close()


@pytest.fixture(scope="module")
def stack(redis_server: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("audio")
    root, outside = base / "music", base / "private"
    root.mkdir()
    outside.mkdir()
    song = _wav(root / "song.wav")
    _wav(outside / "key.wav")
    (root / "escape.wav").symlink_to(outside / "key.wav")
    url = redis_db_url(redis_server.address, 11)
    redis.Redis.from_url(url).flushdb()
    settings = Settings(
        kafka=KafkaSettings(partitions=P),
        redis=RedisSettings(url=SecretStr(url)),
        artifacts=ArtifactSettings(root=base / "no-artifacts"),
        audio=AudioSettings(local_roots=[root]),
    )
    now = datetime.now(UTC)
    links = {
        "t-local": (root / "song.wav").as_uri(),
        "t-outside": (outside / "key.wav").as_uri(),
        "t-symlink": (root / "escape.wav").as_uri(),
        "t-dotdot": f"file://{root}/../private/key.wav",
        "t-remote": "https://cdn.example.com/audio/a.mp3",
    }
    tracks = [
        NewTrack(
            event_id=f"ev-{t}",
            occurred_at=now,
            track_id=t,
            title=f"Title {t}",
            artist="Local Artist",
            audio_url=u,
            permalink_url="file:///etc/hosts" if t == "t-local" else None,
        )
        for t, u in links.items()
    ]
    asyncio.run(_catalog(settings, tracks))
    with TestClient(create_app(settings)) as client:
        yield Stack(client, root, outside, song)


def _no_server_path(stack: Stack, text: str) -> None:
    assert "file:" not in text
    for path in (stack.root, stack.outside, stack.root.parent):
        assert str(path) not in text
        assert str(path.resolve()) not in text


def test_track_pages_give_an_api_route_for_local_audio(stack: Stack) -> None:
    for track in ("t-local", "t-outside", "t-symlink", "t-dotdot"):
        r = stack.client.get(f"/v1/tracks/{track}")
        assert r.status_code == 200, r.text
        assert r.json()["audio_url"] == f"/v1/tracks/{track}/audio"
        _no_server_path(stack, r.text)
    page = stack.client.get("/v1/tracks/t-local").json()
    assert page["permalink_url"] is None  # a file:// permalink is not shown either
    remote = stack.client.get("/v1/tracks/t-remote").json()
    assert remote["audio_url"] == "https://cdn.example.com/audio/a.mp3"


def test_only_trusted_local_audio_is_served(stack: Stack) -> None:
    r = stack.client.get("/v1/tracks/t-local/audio")
    assert r.status_code == 200
    assert r.headers["content-type"] == "audio/wav"
    assert r.content == stack.song
    part = stack.client.get("/v1/tracks/t-local/audio", headers={"Range": "bytes=0-3"})
    assert (part.status_code, part.content) == (206, b"RIFF")
    for track in ("t-outside", "t-symlink", "t-dotdot", "t-remote", "no-such-track"):
        r = stack.client.get(f"/v1/tracks/{track}/audio")
        assert r.status_code == 404, track
        _no_server_path(stack, r.text)


def test_recommendations_and_playlists_carry_no_server_path(stack: Stack) -> None:
    r = stack.client.get("/v1/users/listener-1/recommendations", params={"n": 10})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    local = [i for i in items if i["track_id"] == "t-local"]
    assert local, [i["track_id"] for i in items]  # fresh tracks reach a new listener
    assert local[0]["audio_url"] == "/v1/tracks/t-local/audio"
    _no_server_path(stack, r.text)
    xml = stack.client.get("/v1/users/listener-1/playlist.xspf", params={"n": 10})
    assert xml.status_code == 200
    _no_server_path(stack, xml.text)
    locations = [e.text for e in ET.fromstring(xml.content).iter(f"{XSPF}location")]
    assert "http://testserver/v1/tracks/t-local/audio" in locations
