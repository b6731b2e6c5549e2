"""The API searches the content spaces in the configured vector backend: the similar,
radio, query and personal routes answer alike from the FAISS index files and from Milvus Lite, and
a content version nobody migrated is refused (the reader keeps what it serves)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from encore.services import Proc
from models.io.artifacts import Artifact, ArtifactError, ArtifactStore
from models.io.vectors import migrate, serving_stores
from models.settings import Settings, VectorSettings
from tests.apikit import Built, build
from tests.integration.test_api import _apply, _settings
from tests.streamkit import redis_db_url


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("vector-artifacts"))


@pytest.fixture(scope="module")
def base(built: Built, redis_server: Proc, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    url = redis_db_url(redis_server.address, 11)
    redis.Redis.from_url(url).flushdb()
    settings = _settings(url, built.root)
    settings.vectors = VectorSettings(uri=str(tmp_path_factory.mktemp("milvus") / "api.db"))
    asyncio.run(_apply(settings, [*built.demo.tracks, *built.demo.interactions]))
    return settings


def client_on(settings: Settings, backend: str) -> Iterator[TestClient]:
    served = settings.model_copy(
        update={"vectors": settings.vectors.model_copy(update={"backend": backend})}
    )
    with TestClient(create_app(served)) as client:
        yield client


def similar(client: TestClient, track: str) -> list[tuple[str, Any]]:
    r = client.get(f"/v1/tracks/{track}/similar", params={"n": 8})
    assert r.status_code == 200, r.text
    return [(i["track_id"], i.get("score")) for i in r.json()["items"]]


def test_routes_answer_alike_on_both_backends(built: Built, base: Settings) -> None:
    migrate(base, "milvus")
    seeds = [t.track_id for t in built.demo.tracks[5:60:11]]
    answers: dict[str, list[Any]] = {}
    for backend in ("faiss", "milvus"):
        for client in client_on(base, backend):
            content = client.app.state.resources.bundle.content  # type: ignore[attr-defined]
            assert (content.text_store is not None) == (backend == "milvus")
            collab = client.app.state.resources.bundle.collab  # type: ignore[attr-defined]
            assert (collab.store is not None) == (backend == "milvus")
            answers[backend] = [similar(client, t) for t in seeds]
            assert all(len(a) == 8 for a in answers[backend])
            artist = built.demo.tracks[3].artist_id
            radio = client.get(f"/v1/artists/{artist}/radio", params={"n": 10})
            assert radio.status_code == 200, radio.text
            answers[f"{backend} radio"] = [[i["track_id"] for i in radio.json()["items"]]]
            assert answers[f"{backend} radio"][0]
            for text in ("calm acoustic", "energetic electronic", "sad songs for a rainy day"):
                q = client.post("/v1/recommend", json={"query": text, "top_k": 10})
                assert q.status_code == 200, q.text
                assert q.json()["items"], text
                answers.setdefault(f"{backend} query", []).append(
                    [i["track_id"] for i in q.json()["items"]]
                )
            for user in sorted({e.user_id for e in built.demo.interactions})[:5]:
                p = client.get(f"/v1/users/{user}/recommendations", params={"n": 10})
                assert p.status_code == 200, p.text
                assert p.json()["items"], user
                answers.setdefault(f"{backend} personal", []).append(
                    [i["track_id"] for i in p.json()["items"]]
                )
    assert [[t for t, _ in a] for a in answers["milvus"]] == [
        [t for t, _ in a] for a in answers["faiss"]
    ]
    assert answers["milvus radio"] == answers["faiss radio"]
    assert answers["milvus query"] == answers["faiss query"]
    assert answers["milvus personal"] == answers["faiss personal"]


def test_a_version_not_migrated_is_refused(built: Built, base: Settings) -> None:
    settings = base.model_copy(
        update={"vectors": base.vectors.model_copy(update={"backend": "milvus"})}
    )
    opener = serving_stores(settings)
    assert opener is not None
    art = ArtifactStore(built.root).load("content")
    moved = Artifact(art.kind, "19990101T000000000000Z", art.path, art.manifest)
    with pytest.raises(ArtifactError, match="encore vectors migrate"):
        opener(moved)
    assert serving_stores(base) is None  # faiss: the index files
