"""Every trained model is served: LightGCN, the hybrid and the tuned policy hot-swap like
ALS, and a refresh with nothing new gives the same list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from encore.services import Proc
from models.bandit import ARMS, Policy
from models.events import Play
from models.io.artifacts import ArtifactStore, save_array, save_json
from models.settings import Settings
from tests.apikit import Built, build
from tests.integration.test_api import _apply, _settings
from tests.streamkit import redis_db_url

USER = "demo:u7"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("served-artifacts"))


@pytest.fixture(scope="module")
def api(built: Built, redis_server: Proc) -> Iterator[tuple[TestClient, Settings]]:
    url = redis_db_url(redis_server.address, 10)
    redis.Redis.from_url(url).flushdb()
    settings = _settings(url, built.root)
    asyncio.run(_apply(settings, [*built.demo.tracks, *built.demo.interactions]))
    with TestClient(create_app(settings)) as client:
        yield client, settings


def _recs(client: TestClient, user: str = USER, n: int = 20) -> dict[str, Any]:
    r = client.get(f"/v1/users/{user}/recommendations", params={"n": n})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _wait_for(client: TestClient, kind: str, version: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _recs(client)["model_versions"][kind] == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"{kind} {version} was not swapped in")


def test_refresh_with_nothing_new_gives_the_same_list(api: tuple[TestClient, Settings]) -> None:
    client, settings = api
    first = _recs(client)
    ids = [i["track_id"] for i in first["items"]]
    for _ in range(5):
        again = _recs(client)
        assert (again["arm"], again["propensity"]) == (first["arm"], first["propensity"])
        assert [i["track_id"] for i in again["items"]] == ids
    arms = {_recs(client, f"demo:u{u}")["arm"] for u in range(40)}
    assert len(arms) > 1  # the draw depends on the listener, it is not one fixed arm
    play = Play(
        event_id="served-refresh-play",
        occurred_at=datetime.now(UTC),
        user_id=USER,
        track_id=ids[0],
        ms_played=200_000,
        completion=1.0,
    )
    asyncio.run(_apply(settings, [play]))
    after = _recs(client)
    assert after["session"]["events"] == first["session"]["events"] + 1
    assert ids[0] not in [i["track_id"] for i in after["items"]]  # just played: not again


def _publish_factors(store: ArtifactStore, built: Built, kind: str, seed: int) -> str:
    als = store.load("als", built.als_version)
    rng = np.random.default_rng(seed)
    items = np.asarray(als.array("item_factors.npy"))
    users = np.asarray(als.array("user_factors.npy"))
    path = store.stage(kind)
    save_json(path, "item_ids.json", als.json("item_ids.json"))
    save_array(path, "item_factors", items + rng.normal(0, 0.01, items.shape).astype(np.float32))
    save_json(path, "user_ids.json", als.json("user_ids.json"))
    save_array(path, "user_factors", users)
    return store.publish(kind, path, params={"seed": seed})


def _publish_hybrid(store: ArtifactStore, built: Built, favourites: list[str]) -> str:
    """A hybrid whose list for USER is ``favourites`` (others: the first catalog tracks)."""
    ids = [t.track_id for t in built.demo.tracks]
    users = sorted({e.user_id for e in built.demo.interactions})
    k = len(favourites)
    top = np.tile(np.arange(k, dtype=np.int32), (len(users), 1))
    top[users.index(USER)] = [ids.index(t) for t in favourites]
    scores = np.tile(np.linspace(5.0, 1.0, k, dtype=np.float32), (len(users), 1))
    path = store.stage("hybrid")
    save_json(path, "user_ids.json", users)
    save_json(path, "item_ids.json", ids)
    save_array(path, "top_items", top)
    save_array(path, "top_scores", scores)
    return store.publish("hybrid", path, params={"weights": {"ALS": 1.0}, "k": k})


def test_lightgcn_and_hybrid_are_hot_swapped_and_the_hybrid_leads(
    api: tuple[TestClient, Settings], built: Built
) -> None:
    client, settings = api
    store = ArtifactStore(settings.artifacts.root)
    gcn = _publish_factors(store, built, "lightgcn", seed=3)
    _wait_for(client, "lightgcn", gcn)
    before = _recs(client)
    heard = {e.track_id for e in built.demo.interactions if e.user_id == USER}
    # tracks the ALS list does not lead with, the user has not heard
    shown = {i["track_id"] for i in before["items"]}
    favourites = [t.track_id for t in reversed(built.demo.tracks) if t.track_id not in heard]
    favourites = [t for t in favourites if t not in shown][:30]
    version = _publish_hybrid(store, built, favourites)
    _wait_for(client, "hybrid", version)
    assert _recs(client)["candidates"]["collab"] == len(favourites)  # ALS would give 200
    only = "collab-heavy"  # an arm that leans on the collaborative source, for the check below
    policy = Policy(ARMS, capped=frozenset(a for a in ARMS if a != only), explore_share=0.0)
    _wait_for(client, "policy", store.publish("policy", store.stage("policy"), params={
        "policy": policy.to_json()
    }))  # fmt: skip
    after = _recs(client)
    assert after["model_versions"]["hybrid"] == version
    assert after["arm"] == only
    collab = [i["track_id"] for i in after["items"] if "collab" in i["contributions"]]
    assert collab, f"no item carries the collaborative signal: {after}"
    assert set(collab) <= set(favourites)  # the collaborative source is the hybrid's list
    assert sum(t in favourites for t in [i["track_id"] for i in after["items"]][:10]) >= 5


def test_published_policy_decides_the_arm_and_a_bad_one_is_refused(
    api: tuple[TestClient, Settings],
) -> None:
    client, settings = api
    store = ArtifactStore(settings.artifacts.root)
    only = "discovery"
    policy = Policy(ARMS, capped=frozenset(a for a in ARMS if a != only), explore_share=0.0)
    path = store.stage("policy")
    version = store.publish("policy", path, params={"policy": policy.to_json(), "mmr_lambda": 0.9})
    _wait_for(client, "policy", version)
    assert {_recs(client, f"demo:u{u}")["arm"] for u in range(20)} == {only}
    bad = policy.to_json()
    bad["arms"][only] = {"collab": -1.0}
    path = store.stage("policy")
    store.publish("policy", path, params={"policy": bad})
    time.sleep(1.0)
    assert _recs(client)["model_versions"]["policy"] == version
    assert "policy" in client.app.state.resources.bundle.failures
    assert "weight must be finite and >= 0" in client.app.state.resources.bundle.failures["policy"]


def test_an_item_the_policy_artifact_lacks_is_a_clear_failure(tmp_path: Path) -> None:
    from api.bundle import load_policy

    store = ArtifactStore(tmp_path)
    path = store.stage("policy")
    version = store.publish("policy", path, params={"policy": {"arms": {}}})
    with pytest.raises(ValueError, match=r"policy\.arms is empty"):
        load_policy(store.load("policy", version))
