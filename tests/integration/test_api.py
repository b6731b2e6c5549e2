"""The API on real Redis and real artifacts: adapts at once, explains, degrades, swaps."""

from __future__ import annotations

import asyncio
import mmap
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.pool import WorkPool
from encore.services import Proc
from models.codec import encode_batch
from models.events import LinkCheck, LinkStatus, Skip
from models.io.artifacts import ArtifactStore
from models.io.redis_store import RedisStore, connect
from models.settings import (
    ApiSettings,
    ArtifactSettings,
    KafkaSettings,
    RedisSettings,
    Settings,
)
from models.topics import INTERACTIONS, TOPIC_OF_TYPE, partition_for
from streams.applier import Record
from streams.wiring import build_applier, discard_dead_letters
from tests.apikit import Built, build, demo_data, publish_als, publish_content
from tests.streamkit import redis_db_url

P = 6
XSPF = "{http://xspf.org/ns/0/}"


def _settings(redis_url: str | None, root: Path, bootstrap: str | None = None) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap=bootstrap, partitions=P),
        redis=RedisSettings(url=SecretStr(redis_url) if redis_url else None),
        artifacts=ArtifactSettings(root=root, watch_interval_s=0.2),
        api=ApiSettings(dependency_timeout_s=0.5),
    )


async def _apply(settings: Settings, events: list[Any]) -> None:
    """Fold events into Redis with the stream applier (what a worker does)."""
    store = RedisStore(connect(settings.redis.url.get_secret_value()))  # type: ignore[union-attr]
    applier = build_applier(settings, store, discard_dead_letters)
    by_part: dict[tuple[str, int], list[Any]] = {}
    for e in events:
        topic = TOPIC_OF_TYPE[e.type]
        key = e.user_id if topic == INTERACTIONS else e.track_id
        by_part.setdefault((topic, partition_for(key, P)), []).append(e)
    keys = await applier.keys()
    for (topic, part), evs in sorted(by_part.items()):
        offset = await store.get_int(keys.offset(topic, part), -1)
        await applier.apply(topic, part, [Record(offset + 1, encode_batch(evs))])
    await store.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="module")
def api(built: Built, redis_server: Proc) -> Iterator[tuple[TestClient, Settings]]:
    url = redis_db_url(redis_server.address, 9)
    redis.Redis.from_url(url).flushdb()
    settings = _settings(url, built.root)
    asyncio.run(_apply(settings, [*built.demo.tracks, *built.demo.interactions]))
    with TestClient(create_app(settings)) as client:
        yield client, settings


def _recs(client: TestClient, user: str, n: int = 20) -> dict[str, Any]:
    r = client.get(f"/v1/users/{user}/recommendations", params={"n": n})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_personal_recommendations_explain_themselves(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    body = _recs(client, "demo:u3")
    assert body["rec_id"]
    assert body["arm"]
    assert 0 < body["propensity"] <= 1
    assert body["degraded"] is False
    assert body["model_versions"]["als"]
    assert body["model_versions"]["content"]
    assert {"state", "bandit", "candidates", "enrich", "rerank"} <= set(body["timings_ms"])
    items = body["items"]
    assert len(items) == 20
    assert all(i["reason"] and i["contributions"] and i["title"] for i in items)
    scores = [i["score"] for i in items]
    assert max(scores) == scores[0]
    heard = {e.track_id for e in _demo(client).interactions if e.user_id == "demo:u3"}
    recent = [i["track_id"] for i in items if i["track_id"] in heard]
    assert len(recent) < len(items)  # not just the history back


def _demo(client: TestClient) -> Any:
    return demo_data()


def _first_position(items: list[dict[str, Any]], artist: str) -> int:
    return next((i for i, it in enumerate(items) if it["artist"] == artist), len(items))


def test_two_skips_of_an_artist_demote_it_in_the_next_request(
    api: tuple[TestClient, Settings],
) -> None:
    client, settings = api
    user = "demo:u5"
    before = _recs(client, user, n=30)["items"]
    artist = before[0]["artist"]
    tracks = [t for t in _demo(client).tracks if t.artist == artist][:2]
    now = datetime.now(UTC)
    skips = [
        Skip(
            event_id=f"api-skip-{t.track_id}",
            occurred_at=now,
            user_id=user,
            track_id=t.track_id,
            ms_played=3_000,
        )
        for t in tracks
    ]
    asyncio.run(_apply(settings, skips))
    after = _recs(client, user, n=30)["items"]
    assert _first_position(after, artist) > _first_position(before, artist)
    for item in after:
        if item["artist"] == artist:
            assert item["contributions"]["skips"] < 0


def test_cold_start_user_gets_popular_and_trending(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    body = _recs(client, "brand-new-listener")
    assert body["items"]
    assert body["session"]["events"] == 0
    assert "collab" not in body["candidates"]


def test_query_recommendations_detect_mood(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    r = client.post("/v1/recommend", json={"query": "calm music to fall asleep", "top_k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mood_detected"]["arousal"] < 0
    assert body["items"]
    assert all(i["mood"] is not None for i in body["items"])
    energetic = client.post("/v1/recommend", json={"query": "angry loud party", "top_k": 10})
    assert energetic.json()["mood_detected"]["arousal"] > body["mood_detected"]["arousal"]
    sad = client.post("/v1/recommend", json={"query": "i miss my ex", "top_k": 5}).json()
    assert sad["mood_detected"]["source"] == "regression"
    genre = client.post("/v1/recommend", json={"query": "some jazz please"}).json()
    assert genre["query_type"] == "genre"


def test_mood_queries_use_the_tag_space(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    body = client.post("/v1/recommend", json={"query": "something to fall asleep to"}).json()
    assert body["query_type"] == "mood"
    assert body["expanded_tags"]
    assert "no_tag_space" not in body["degraded_reasons"]
    assert body["items"]
    tags = {t["tag"] for t in body["expanded_tags"]}
    demo = {t.track_id: t for t in _demo(client).tracks}
    top = [demo[i["track_id"]] for i in body["items"][:5]]
    assert sum(bool(tags & {x.lower() for x in t.tags}) for t in top) >= 3
    artist = _demo(client).tracks[0].artist
    named = client.post("/v1/recommend", json={"query": artist}).json()
    assert named["query_type"] == "artist"
    assert named["items"][0]["artist"] == artist


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("   ", "empty"),
        ("?!?! ... ;-)", "no_words"),
        ("ночная поездка по городу", "unsupported_language"),
        ("夜のドライブ", "unsupported_language"),
    ],
)
def test_queries_without_readable_words_get_422(
    api: tuple[TestClient, Settings], query: str, reason: str
) -> None:
    client, _ = api
    r = client.post("/v1/recommend", json={"query": query})
    assert r.status_code == 422, r.text
    assert "query" in r.text
    assert reason in r.text


def test_similar_radio_track_page_and_users(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    demo = _demo(client)
    track = demo.tracks[10]
    sim = client.get(f"/v1/tracks/{track.track_id}/similar", params={"n": 8}).json()
    assert len(sim["items"]) == 8
    assert track.track_id not in [i["track_id"] for i in sim["items"]]
    page = client.get(f"/v1/tracks/{track.track_id}").json()
    assert page["title"] == track.title
    assert page["link_health"]["status"] == "unknown"
    radio = client.get(f"/v1/artists/{track.artist_id}/radio", params={"n": 10}).json()
    assert radio["items"]
    assert all(i["artist"] != track.artist for i in radio["items"])
    users = client.get("/v1/users/demo:u1/similar", params={"n": 5}).json()
    assert len(users["users"]) == 5
    assert client.get("/v1/tracks/nope/similar").status_code == 404


def test_playlist_is_valid_xspf(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    r = client.get("/v1/users/demo:u2/playlist.xspf", params={"n": 10})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xspf+xml")
    root = ET.fromstring(r.content)
    assert root.tag == f"{XSPF}playlist"
    assert root.attrib["version"] == "1"
    tracks = root.findall(f"{XSPF}trackList/{XSPF}track")
    assert len(tracks) == 10
    allowed = {
        "location",
        "identifier",
        "title",
        "creator",
        "annotation",
        "info",
        "image",
        "album",
        "trackNum",
        "duration",
        "link",
        "meta",
        "extension",
    }
    for t in tracks:
        assert {c.tag.removeprefix(XSPF) for c in t} <= allowed
        assert t.find(f"{XSPF}identifier").text.startswith("urn:")  # type: ignore[union-attr]
    for odd in ("u%EF%BF%BE", "u%EF%BF%BF", "u%ED%A0%80"):  # U+FFFE, U+FFFF, a bad byte run
        r = client.get(f"/v1/users/{odd}/playlist.xspf", params={"n": 3})
        assert r.status_code == 200, odd
        creator = ET.fromstring(r.content).find(f"{XSPF}creator")
        assert creator is not None
        assert creator.text is not None
        assert set(creator.text) == {"u", "\ufffd"}


def test_a_dead_link_leaves_the_list_and_the_list_stays_full(
    api: tuple[TestClient, Settings],
) -> None:
    client, settings = api
    before = _recs(client, "demo:u7")
    assert all(i["link"] in ("unknown", "valid", "moved", "requires_auth") for i in before["items"])
    dead = [before["items"][0]["track_id"], before["items"][5]["track_id"]]
    t0 = datetime.now(UTC)
    checks = [
        LinkCheck(
            event_id=f"dead-{t}-{i}",
            occurred_at=t0,
            track_id=t,
            url="https://audio.example.com/a.mp3",
            status=LinkStatus.DEAD,
            http_code=404,
        )
        for t in dead
        for i in range(3)
    ]
    asyncio.run(_apply(settings, checks))
    after = _recs(client, "demo:u7")
    assert after["arm"] == before["arm"]  # same state: same arm
    ids = [i["track_id"] for i in after["items"]]
    assert not set(dead) & set(ids)
    assert len(ids) == len(before["items"])
    assert all(i["link"] != "dead" for i in after["items"])


def test_bad_requests_get_clear_4xx(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    r = client.get("/v1/users/demo:u1/recommendations", params={"n": 0})
    assert r.status_code == 422
    assert "n" in r.text
    r = client.post("/v1/recommend", json={"query": ""})
    assert r.status_code == 422
    assert "query" in r.text
    r = client.post(
        "/v1/recommend", json={"query": "x", "filters": {"year_min": 2000, "year_max": 1990}}
    )
    assert r.status_code == 422
    assert "year_min" in r.text
    r = client.post(
        "/v1/recommend", content=b"x" * 2_000_000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def _mapped(array: Any) -> bool:
    """Whether an array is a view of a memory-mapped file."""
    while isinstance(array, np.ndarray):
        if isinstance(array, np.memmap):
            return True
        array = array.base
    return isinstance(array, mmap.mmap)


def test_read_only_artifact_arrays_are_memory_mapped(built: Built, tmp_path: Path) -> None:
    from api.bundle import load_collab, load_content

    store = ArtifactStore(built.root)
    content = load_content(store.load("content"))
    collab = load_collab(store.load("als"))
    for shared in (content.text, content.mood, collab.raw_items, collab.user_factors):
        assert _mapped(shared)
        assert not shared.flags.writeable
    index = faiss.IndexFlatIP(content.text.shape[1])
    index.add(np.asarray(content.text))
    faiss.write_index(index, str(tmp_path / "text.faiss"))
    with_index = ArtifactStore(tmp_path / "store")
    path = with_index.stage("content")
    for f in store.load("content").path.iterdir():
        if f.name != "manifest.json":
            (path / f.name).write_bytes(f.read_bytes())
    (path / "text.faiss").write_bytes((tmp_path / "text.faiss").read_bytes())
    with_index.publish("content", path, params=store.load("content").manifest["params"])
    mapped = load_content(with_index.load("content"))  # an index file: mapped, still searches
    rows, _ = mapped.search_text(np.asarray(content.text[5]), 3)
    assert rows[0] == 5


def test_hot_swap_under_concurrent_requests(api: tuple[TestClient, Settings], built: Built) -> None:
    client, settings = api
    old = client.get("/v1/users/demo:u1/recommendations").json()["model_versions"]["als"]
    errors: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            r = client.get("/v1/users/demo:u1/recommendations", params={"n": 10})
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    new = publish_als(ArtifactStore(settings.artifacts.root), built.demo, seed=7)
    deadline = time.monotonic() + 20
    seen = old
    while time.monotonic() < deadline and seen != new:
        seen = client.get("/v1/users/demo:u1/recommendations").json()["model_versions"]["als"]
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert seen == new != old


def test_corrupted_artifact_is_refused_and_the_old_one_kept(
    api: tuple[TestClient, Settings],
    built: Built,
) -> None:
    client, settings = api
    store = ArtifactStore(settings.artifacts.root)
    before = client.get("/readyz").json()["checks"]
    current = client.get("/v1/users/demo:u1/recommendations").json()["model_versions"]["als"]
    version = publish_als(store, built.demo, seed=11)
    (store.root / "als" / version / "item_factors.npy").write_bytes(b"garbage")
    time.sleep(1.0)
    served = client.get("/v1/users/demo:u1/recommendations").json()["model_versions"]["als"]
    assert served == current
    assert before["artifacts"]["als"] is True
    assert "als" in client.app.state.resources.bundle.failures


def test_a_refused_artifact_is_reported_without_server_paths(
    api: tuple[TestClient, Settings],
    built: Built,
) -> None:
    client, settings = api
    store = ArtifactStore(settings.artifacts.root)
    version = publish_als(store, built.demo, seed=12)
    manifest = store.root / "als" / version / "manifest.json"
    manifest.unlink()
    manifest.mkdir()  # reading it fails with an error that names its path
    deadline = time.monotonic() + 10
    failure = ""
    while time.monotonic() < deadline and not failure.startswith(version):
        status = client.get("/v1/admin/status", headers={"X-API-Key": "dev-admin-key"})
        failure = status.json()["artifact_failures"].get("als", "")
        time.sleep(0.2)
    assert failure.startswith(version), failure
    assert "<artifacts>/als/" in failure
    assert str(store.root) not in status.text
    assert str(store.root.resolve()) not in status.text


def test_redis_down_still_answers_degraded(built: Built, tmp_path: Path) -> None:
    settings = _settings("redis://127.0.0.1:1/0", built.root)
    with TestClient(create_app(settings)) as client:
        r = client.get("/v1/users/demo:u3/recommendations", params={"n": 10})
        assert r.status_code == 200
        body = r.json()
        assert body["degraded"] is True
        assert "redis_unavailable" in body["degraded_reasons"]
        assert len(body["items"]) == 10
        assert "collab" in body["candidates"]  # the batch model still personalises
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


class _GatedModel:
    """A text model whose encode waits at a gate, and says when an encode has started."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def available(self) -> bool:
        return True

    def encode(self, texts: list[str]) -> Any:
        self.started.release()
        assert self.gate.wait(60)
        return self.real.encode(texts)


def test_a_full_worker_pool_answers_503_while_healthz_and_personal_answer(
    built: Built,
) -> None:
    settings = Settings(artifacts=ArtifactSettings(root=built.root, watch_interval_s=0.2))
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(4) as calls:
        res = client.app.state.resources  # type: ignore[attr-defined]
        res.engine.pool.close()  # two threads, so both held encodes start (none waits)
        res.engine.pool = res.embedder.pool = WorkPool(2, threads=2)
        model = _GatedModel(res.embedder.model)
        res.embedder.model = model
        try:
            held = [
                calls.submit(client.post, "/v1/recommend", json={"query": f"held query {i}"})
                for i in range(2)
            ]
            for _ in held:  # both encodes are running: the pool is full
                assert model.started.acquire(timeout=30)
            # the event loop is free: liveness and the personal route answer meanwhile
            assert calls.submit(client.get, "/healthz").result(timeout=10).status_code == 200
            personal = calls.submit(client.get, "/v1/users/demo:u3/recommendations")
            assert personal.result(timeout=30).status_code == 200
            # a query past the bound is refused at once, not queued, not a 500
            full = calls.submit(client.post, "/v1/recommend", json={"query": "one more"})
            refused = full.result(timeout=10)
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "1"
        finally:
            model.gate.set()
        assert [h.result(timeout=60).status_code for h in held] == [200, 200]
        assert client.post("/v1/recommend", json={"query": "one more"}).status_code == 200


def test_content_without_a_tag_space_still_answers_queries(tmp_path: Path) -> None:
    demo = demo_data(n_tracks=120, n_users=40)
    store = ArtifactStore(tmp_path)
    publish_content(store, demo, publish_als(store, demo), tag_space=False)
    settings = _settings("redis://127.0.0.1:1/0", tmp_path)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/recommend", json={"query": "songs for a long night drive"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert "no_tag_space" in body["degraded_reasons"]
        assert body["expanded_tags"] == []
        assert body["items"]


def test_tracks_the_catalog_flags_as_not_music_are_never_recommended(tmp_path: Path) -> None:
    demo = demo_data(n_tracks=120, n_users=40)
    store = ArtifactStore(tmp_path)
    als = publish_als(store, demo)
    publish_content(store, demo, als, tag_space=False)
    settings = _settings("redis://127.0.0.1:1/0", tmp_path)
    user = demo.interactions[0].user_id
    with TestClient(create_app(settings)) as client:
        before = client.get(f"/v1/users/{user}/recommendations", params={"n": 10}).json()
        flagged = frozenset(i["track_id"] for i in before["items"][:3])
        assert len(flagged) == 3
        seed = before["items"][5]["track_id"]
        similar = client.get(f"/v1/tracks/{seed}/similar", params={"n": 50}).json()
        assert flagged & {i["track_id"] for i in similar["items"]}
        version = publish_content(store, demo, als, tag_space=False, non_music=flagged)
        deadline = time.monotonic() + 20
        after = before
        while time.monotonic() < deadline and after["model_versions"]["content"] != version:
            time.sleep(0.2)
            after = client.get(f"/v1/users/{user}/recommendations", params={"n": 10}).json()
        assert after["model_versions"]["content"] == version
        assert not flagged & {i["track_id"] for i in after["items"]}
        assert len(after["items"]) == 10
        similar = client.get(f"/v1/tracks/{seed}/similar", params={"n": 50}).json()
        assert not flagged & {i["track_id"] for i in similar["items"]}
        r = client.post("/v1/recommend", json={"query": "energetic rock", "top_k": 50})
        assert r.status_code == 200, r.text
        assert not flagged & {i["track_id"] for i in r.json()["items"]}


def test_encore_recommend_writes_the_api_list_as_a_playlist_file(
    api: tuple[TestClient, Settings], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from encore.cli import app as cli

    client, settings = api
    served = _recs(client, "demo:u4", n=12)
    env = {
        "ENCORE_REDIS_URL": settings.redis.url.get_secret_value(),  # type: ignore[union-attr]
        "ENCORE_KAFKA_PARTITIONS": str(P),
        "ENCORE_ARTIFACTS_ROOT": str(settings.artifacts.root),
    }
    out = tmp_path / "lists" / "u4.xspf"
    run = CliRunner().invoke(
        cli, ["recommend", "demo:u4", "--top-n", "12", "--xspf", str(out)], env=env
    )
    assert run.exit_code == 0, run.output
    assert "demo:u4: 12 tracks" in run.stdout
    tracks = ET.parse(out).getroot().findall(f"{XSPF}trackList/{XSPF}track")
    ids = [t.findtext(f"{XSPF}identifier") for t in tracks]
    # the same state, models and arm as the API's answer: the same list
    assert ids == [f"urn:encore:track:{i['track_id']}" for i in served["items"]]
    assert [t.findtext(f"{XSPF}title") for t in tracks] == [i["title"] for i in served["items"]]

    bad = CliRunner().invoke(cli, ["recommend", "", "--top-n", "5"], env=env)
    assert bad.exit_code == 2
    assert "user id" in bad.output
