"""Factor and hybrid artifacts round-trip with checksums, refuse corruption, and serve batch
lists (minus an exclude file's pairs)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from batch.data import TrainData
from batch.publish import publish_factors, publish_hybrid
from batch.recommend import ExcludeFileError, read_exclude, read_users, recommend
from batch.schedule import run_every
from encore.train_cli import app
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


def tiny_hybrid(store: ArtifactStore) -> str:
    """A hybrid artifact over :func:`tiny`'s data, lists written by hand (K = 3)."""
    data, _, _ = tiny()
    top = np.array([[1, 3, -1], [0, 2, 3], [2, -1, -1]], dtype=np.int32)
    scores = np.array([[2.0, 1.0, 0.0], [3.0, 2.5, -1.0], [0.5, 0.0, 0.0]], dtype=np.float32)
    return publish_hybrid(store, data, top, scores, params={"k": 3}, metrics={})


@pytest.fixture
def all_kinds(tmp_path: Path) -> ArtifactStore:
    store = ArtifactStore(tmp_path / "artifacts")
    data, users, items = tiny()
    for kind in ("als", "lightgcn"):
        publish_factors(store, kind, data, users, items, params={}, metrics={})
    tiny_hybrid(store)
    return store


def lines(path: Path) -> dict[str, dict[str, object]]:
    return {d["user_id"]: d for d in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize("kind", ["als", "lightgcn"])
def test_recommend_batch_leaves_out_the_exclude_files_pairs(
    all_kinds: ArtifactStore, tmp_path: Path, kind: str
) -> None:
    exclude = tmp_path / "exclude.tsv"
    exclude.write_text("user_id\titem_id\n# u0 heard t3 in validation\nu0\tt3\nstranger\tt0\n")
    pairs = read_exclude(exclude)
    assert pairs == {"u0": {"t3"}, "stranger": {"t0"}}
    out = tmp_path / "recs.jsonl"
    stats = recommend(all_kinds, ["u0", "u1", "stranger"], 2, out, kind)
    before = lines(out)
    assert set(before["u0"]["items"]) == {"t1", "t3"}  # type: ignore[arg-type]
    assert before["stranger"]["items"] == ["t0", "t1"]  # the most popular
    stats = recommend(all_kinds, ["u0", "u1", "stranger"], 2, out, kind, pairs)
    after = lines(out)
    assert after["u0"]["items"] == ["t1"]  # t0, t2 trained on, t3 excluded
    assert after["u1"]["items"] == before["u1"]["items"]
    assert after["stranger"]["items"] == ["t1", "t2"]
    assert after["stranger"]["fallback"] == "popularity"
    assert stats["exclude_pairs"] == 2
    assert stats["exclude_pairs_of_known_users"] == 1


def test_recommend_batch_from_the_hybrids_precomputed_lists(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    version = tiny_hybrid(store)
    out = tmp_path / "recs.jsonl"
    stats = recommend(store, ["u0", "u1", "u2", "stranger"], 2, out, "hybrid")
    got = lines(out)
    assert [got[u]["items"] for u in ("u0", "u1", "u2")] == [["t1", "t3"], ["t0", "t2"], ["t2"]]
    assert got["u1"]["scores"] == [3.0, 2.5]
    assert got["u0"]["version"] == version
    assert got["stranger"] == {**got["stranger"], "items": [], "fallback": "none"}  # no als
    assert stats["short_after_exclusion"] == 0

    pairs = {"u0": {"t1"}, "u1": {"t0"}, "u2": {"t2"}, "stranger": {"t0"}}
    data, users, items = tiny()
    publish_factors(store, "als", data, users, items, params={}, metrics={})
    stats = recommend(store, ["u0", "u1", "u2", "stranger"], 2, out, "hybrid", pairs)
    got = lines(out)
    assert got["u0"]["items"] == ["t3"]  # ran short of k because of the exclusion
    assert got["u1"]["items"] == ["t2", "t3"]  # the third precomputed item fills in
    assert got["u2"]["items"] == []
    assert got["stranger"]["items"] == ["t1", "t2"]
    assert got["stranger"]["fallback"] == "popularity"
    assert stats["short_after_exclusion"] == 1  # u2 was short before any exclusion
    with pytest.raises(ValueError, match="k=4 is more than the 3 items"):
        recommend(store, ["u0"], 4, out, "hybrid")


def test_hybrid_lists_that_break_the_layout_are_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    data, _, _ = tiny()
    good = np.array([[1, 3, -1], [0, 2, 3], [2, -1, -1]], dtype=np.int32)
    scores = np.array([[2.0, 1.0, 0.0], [3.0, 2.5, -1.0], [0.5, 0.0, 0.0]], dtype=np.float32)
    bad = {
        "padding": (np.array([[1, -1, 3], *good[1:]], dtype=np.int32), scores),
        "descend": (good, np.array([[1.0, 2.0, 0.0], *scores[1:]], dtype=np.float32)),
        "non-finite": (good, np.array([[np.nan, 1.0, 0.0], *scores[1:]], dtype=np.float32)),
        "outside": (np.array([[4, 3, -1], *good[1:]], dtype=np.int32), scores),
        "int32": (good.astype(np.int64), scores),
    }
    for reason, (top, sc) in bad.items():
        with pytest.raises(ValueError, match=reason):
            publish_hybrid(store, data, top, sc, params={}, metrics={})
    assert store.current_version("hybrid") is None


@pytest.mark.parametrize(
    ("text", "line"),
    [("u0\tt1\nu1\n", 2), ("# c\n\nu0,t1,t2\n", 3), ("u0\t\n", 1), ("u0\tt1\tt2\n", 1)],
)
def test_a_malformed_exclude_file_names_its_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "exclude.tsv"
    path.write_text(text)
    with pytest.raises(ExcludeFileError, match=f"exclude.tsv:{line}: expected user_id<TAB>item_id"):
        read_exclude(path)


@pytest.mark.parametrize("kind", ["als", "lightgcn", "hybrid"])
def test_recommend_batch_command_for_each_kind(
    all_kinds: ArtifactStore, tmp_path: Path, kind: str
) -> None:
    env = {"ENCORE_ARTIFACTS_ROOT": str(all_kinds.root)}
    users = tmp_path / "users.txt"
    users.write_text("u0\nu1\n")
    out = tmp_path / "recs.jsonl"
    base = ["recommend-batch", "--users", str(users), "--out", str(out), "--kind", kind, "--k", "2"]
    result = CliRunner().invoke(app, base, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["known"] == 2
    assert "t3" in lines(out)["u0"]["items"]  # type: ignore[operator]
    exclude = tmp_path / "exclude.tsv"
    exclude.write_text("u0\tt3\nu1\tt3\n")
    result = CliRunner().invoke(app, [*base, "--exclude", str(exclude)], env=env)
    assert result.exit_code == 0, result.output
    assert all("t3" not in d["items"] for d in lines(out).values())  # type: ignore[operator]
    exclude.write_text("u0\tt3\nu1 t3\n")
    result = CliRunner().invoke(app, [*base, "--exclude", str(exclude)], env=env)
    assert result.exit_code == 2
    assert "exclude.tsv:2: expected user_id<TAB>item_id" in result.stderr
