"""The API's bundle watcher and the workers' item-space watcher follow the one policy of
models.io.watcher: a refused version is kept out, counted once and shown; a version that
loads on a later try replaces it and clears what was shown."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from prometheus_client import REGISTRY

from api.bundle import BundleWatcher
from models.bandit import ARMS, Policy
from models.io.artifacts import ArtifactStore, save_array, save_json
from models.serving import Bundle
from streams.applier import ItemLookup
from streams.itemspace import SpaceWatcher


def refusals(kind: str) -> float:
    return REGISTRY.get_sample_value("encore_artifact_load_failures_total", {"kind": kind}) or 0.0


def publish_policy(store: ArtifactStore, weight: float) -> str:
    policy = Policy(ARMS).to_json()
    policy["arms"]["discovery"] = {"collab": weight}
    return store.publish("policy", store.stage("policy"), params={"policy": policy})


async def test_bundle_watcher_shows_a_refused_version_until_it_loads(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    holder = SimpleNamespace(bundle=Bundle())
    watcher = BundleWatcher(holder, tmp_path, retry_s=1.0, retry_max_s=10.0)
    now = [0.0]
    watcher.watcher.clock = lambda: now[0]
    good = publish_policy(store, 1.0)
    assert await watcher.check() == ["policy"]
    before = refusals("policy")
    bad = publish_policy(store, -1.0)
    assert await watcher.check() == []
    assert holder.bundle.versions()["policy"] == good
    shown = holder.bundle.failures["policy"]
    assert shown.startswith(f"{bad}: ")
    assert "weight must be finite" in shown
    assert str(tmp_path) not in shown
    now[0] = watcher.watcher.failures["policy"].retry_at
    assert await watcher.check() == []  # tried again on its backoff, still bad
    assert watcher.watcher.failures["policy"].attempts == 2
    assert refusals("policy") == before + 1  # one refused version, counted once
    path = tmp_path / "policy" / bad  # repaired in place: the next try loads it
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["params"]["policy"]["arms"]["discovery"] = {"collab": 1.0}
    store.publish("policy", path, params=manifest["params"])
    now[0] = watcher.watcher.failures["policy"].retry_at
    assert await watcher.check() == ["policy"]
    assert holder.bundle.versions()["policy"] == bad
    assert "policy" not in holder.bundle.failures


def publish_space(store: ArtifactStore, factors: np.ndarray) -> str:
    path = store.stage("als")
    save_json(path, "item_ids.json", [f"t{i}" for i in range(len(factors))])
    save_array(path, "item_factors", factors)
    return store.publish("als", path)


async def test_space_watcher_keeps_the_old_space_and_falls_back_when_empty(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(tmp_path, keep=5)
    good = publish_space(store, np.eye(3, dtype=np.float32))
    publish_space(store, np.full((3, 3), np.nan, dtype=np.float32))
    lookup = ItemLookup()
    watcher = SpaceWatcher(lookup, tmp_path, "als", 60.0)
    assert await watcher.check() is True  # nothing served: the older good version stands in
    assert lookup.model == good
    assert await watcher.check() is False  # the bad one waits out its backoff
    newer = publish_space(store, np.eye(3, dtype=np.float32) * 2)
    assert await watcher.check() is True  # a new version is tried at once
    assert lookup.model == newer
    assert lookup.lookup(["t1"])["t1"].vector[1] == 1.0
