"""Factor artifacts round-trip with checksums, refuse corruption, and serve batch lists."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
import scipy.sparse as sp

from batch.data import TrainData
from batch.publish import publish_factors
from batch.recommend import read_users, recommend
from batch.schedule import run_every
from models.index import search
from models.io.artifacts import ArtifactError, ArtifactStore
from streams.itemspace import load_space


def tiny() -> tuple[TrainData, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(np.array([[3, 0, 1, 0], [0, 2, 0, 0], [1, 1, 0, 5]], np.float32))
    catalog = {f"t{i}": {"title": f"T{i}", "artist_id": f"a{i % 2}"} for i in range(4)}
    data = TrainData("test", ["u0", "u1", "u2"], ["t0", "t1", "t2", "t3"], counts, catalog)
    data.info = {"source": "test", "users": 3}
    return (
        data,
        rng.normal(size=(3, 8)).astype(np.float32),
        rng.normal(size=(4, 8)).astype(np.float32),
    )


def test_factor_artifact_round_trip_and_corruption(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, keep=2)
    data, users, items = tiny()
    version = publish_factors(
        store, "als", data, users, items, params={"factors": 8}, metrics={"ndcg@10": 0.5}
    )
    art = store.load("als")
    assert art.version == version
    assert art.manifest["params"]["factors"] == 8
    assert art.manifest["params"]["index"] == "flat"
    assert art.manifest["data"]["source"] == "test"
    assert set(art.manifest["files"]) >= {
        "item_ids.json", "item_factors.npy", "user_ids.json", "user_factors.npy",
        "item_artists.json", "popularity.npy", "index.faiss",
    }  # fmt: skip
    assert art.json("item_ids.json") == data.items
    assert art.json("item_artists.json") == ["a0", "a1", "a0", "a1"]
    assert np.array_equal(art.array("item_factors.npy"), items)
    assert art.array("popularity.npy").tolist() == [2.0, 2.0, 1.0, 1.0]
    index = faiss.read_index(str(art.file("index.faiss")))
    _, found = search(index, items, 1)
    assert found[:, 0].tolist() == [0, 1, 2, 3]
    assert load_space(tmp_path, "als").vector("t2") is not None  # the stream workers can read it

    (art.path / "item_factors.npy").write_bytes(b"\x93NUMPY corrupted")
    with pytest.raises(ArtifactError, match=r"checksum mismatch in item_factors\.npy"):
        store.load("als", version)
    with pytest.raises(ValueError, match="non-finite"):
        publish_factors(store, "als", data, users, items * np.nan, params={}, metrics={})
    assert store.current_version("als") == version  # a refused publish changes nothing


def test_only_the_newest_versions_are_kept(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, keep=2)
    data, users, items = tiny()
    versions = [
        publish_factors(store, "lightgcn", data, users, items, params={}, metrics={})
        for _ in range(3)
    ]
    assert store.versions("lightgcn") == versions[1:]
    assert store.current_version("lightgcn") == versions[-1]


def test_recommend_batch_skips_seen_items_and_falls_back(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    data, users, items = tiny()
    publish_factors(store, "als", data, users, items, params={}, metrics={})
    users_file = tmp_path / "users.txt"
    users_file.write_text("# who\nu0\nu2\nstranger\n\n")
    out = tmp_path / "recs.jsonl"
    stats = recommend(store, read_users(users_file), 2, out)
    assert stats["known"] == 2
    assert stats["fallback"] == 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["user_id"] for x in lines] == ["u0", "u2", "stranger"]
    assert set(lines[0]["items"]) == {"t1", "t3"}  # u0 had t0 and t2
    assert lines[1]["items"] == ["t2"]  # u2 had t0, t1, t3: nothing else is left
    expect = sorted(["t1", "t3"], key=lambda t: -float(users[0] @ items[int(t[1])]))
    assert lines[0]["items"] == expect
    assert lines[2]["fallback"] == "popularity"
    assert len(lines[2]["items"]) == 2


def test_schedule_runs_until_stopped_and_survives_failures() -> None:
    stop = threading.Event()
    calls: list[int] = []
    errors: list[Exception] = []

    def job() -> int:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("broker down")
        if len(calls) == 4:
            stop.set()
        return len(calls)

    runs = run_every(0.01, job, stop=stop, on_error=errors.append)
    assert runs == 4
    assert [str(e) for e in errors] == ["broker down"]
    with pytest.raises(ValueError, match="positive"):
        run_every(0, job, stop=stop)
