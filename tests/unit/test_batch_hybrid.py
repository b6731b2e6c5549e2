"""The hybrid artifact: tuned blend weights, every user's top K without their training items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from batch import hybrid, train
from batch.cf import EASE, Blend, ItemKNN, Popularity
from batch.data import TrainData, binary
from batch.metrics import evaluate
from batch.split import random_split
from models.io.artifacts import ArtifactStore
from models.settings import BatchSettings, Settings

K = 6
FILES = {"user_ids.json", "item_ids.json", "top_items.npy", "top_scores.npy"}


def synthetic(n_users: int = 60, n_items: int = 40, tags: bool = True) -> TrainData:
    """Two taste groups over two halves of the items; user 0 has all but two items."""
    rng = np.random.default_rng(3)
    half = n_items // 2
    dense = np.zeros((n_users, n_items), dtype=np.float32)
    for u in range(n_users):
        side = slice(0, half) if u % 2 else slice(half, n_items)
        picks = rng.choice(np.arange(n_items)[side], size=8, replace=False)
        dense[u, picks] = rng.integers(1, 20, size=8)
        dense[u, rng.integers(0, n_items)] += 1.0
    dense[0, :] = 3.0
    dense[0, [5, 30]] = 0.0
    items = [f"t{i}" for i in range(n_items)]
    catalog = {
        t: {"tags": (["a", "rock"] if i < half else ["b", "jazz"]) if tags and i % 3 else []}
        for i, t in enumerate(items)
    }
    data = TrainData("synthetic", [f"u{u}" for u in range(n_users)], items,
                     sp.csr_matrix(dense), catalog)  # fmt: skip
    data.info = {"source": "synthetic"}
    return data


def settings(**batch: object) -> Settings:
    small = {"factors": 8, "als_iterations": 3, "lightgcn_factors": 8, "lightgcn_epochs": 10}
    return Settings(batch=BatchSettings(**{**small, "hybrid_top_k": K, **batch}))  # type: ignore[arg-type]


def run(store: ArtifactStore, data: TrainData, s: Settings, **kw: object) -> str:
    args = {"tags_folder": None, "fitted": {}, "versions": {}, **kw}
    version, _blend = train.train_hybrid(store, data, s, train.Bars(False), **args)  # type: ignore[arg-type]
    return version


def test_hybrid_artifact_holds_each_users_top_k_without_their_items(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    data = synthetic()
    version = run(store, data, settings())
    art = store.load("hybrid")
    assert art.version == version
    assert set(art.manifest["files"]) == FILES
    assert art.json("user_ids.json") == data.users
    assert art.json("item_ids.json") == data.items
    top, scores = art.array("top_items.npy"), art.array("top_scores.npy")
    assert top.dtype == np.int32
    assert scores.dtype == np.float32
    assert top.shape == scores.shape == (len(data.users), K)
    assert np.isfinite(scores).all()
    seen = data.counts.tocsr()
    for u in range(len(data.users)):
        listed = top[u][top[u] >= 0]
        assert not set(listed) & set(seen[u].indices), u  # never a training item
        assert len(set(listed)) == listed.size
        assert np.all(np.diff(scores[u][: listed.size]) <= 0)
    assert top[0].tolist()[2:] == [-1] * (K - 2)  # only two items left for user 0
    assert sorted(top[0, :2].tolist()) == [5, 30]
    assert scores[0, 2:].tolist() == [0.0] * (K - 2)
    assert (top[1:] >= 0).all()

    params, metrics = art.manifest["params"], art.manifest["metrics"]
    assert set(params["weights"]) == {"als", "lightgcn", "ease", "tags"}
    assert params["weights"]["als"] == 1.0
    assert set(params["components"]) == {"als", "lightgcn", "ease", "tags"}
    assert params["left_out"] == {}
    assert params["k"] == K
    assert params["excluded"] == "training items of each user"
    valid = metrics["validation"]
    assert 0.0 < valid["ndcg@10"] <= 1.0
    alone = valid["by_component"]["ndcg@10"]
    assert set(alone) == {"als", "lightgcn", "ease", "tags"}
    assert valid["ndcg@10"] >= alone["als"]  # ALS alone is one of the tried blends
    assert metrics["validation_protocol"] == "random 90/10 per user"


def test_components_that_cannot_be_built_are_left_out_and_recorded(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    data = synthetic(tags=False)
    run(store, data, settings(hybrid_ease_max_items=len(data.items) - 1))
    params = store.load("hybrid").manifest["params"]
    assert set(params["weights"]) == {"als", "lightgcn"}
    assert set(params["left_out"]) == {"ease", "tags"}
    assert set(
        store.load("hybrid").manifest["metrics"]["validation"]["by_component"]["ndcg@10"]
    ) == {
        "als",
        "lightgcn",
    }


def test_models_fitted_earlier_in_the_run_are_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path)
    data = synthetic()
    s = settings()
    fitted = {"als": train.fit_als(data, s, train.Bars(False))}
    fitted["lightgcn"] = train.fit_lightgcn(data, s, train.Bars(False))

    def refit(*_a: object) -> None:
        raise AssertionError("fitted twice")

    monkeypatch.setattr(train, "fit_als", refit)
    monkeypatch.setattr(train, "fit_lightgcn", refit)
    run(store, data, s, fitted=fitted, versions={"als": "v-als"})
    components = store.load("hybrid").manifest["params"]["components"]
    assert components["als"]["version"] == "v-als"
    assert "version" not in components["lightgcn"]
    assert components["lightgcn"]["params"]["factors"] == 8


def test_tuning_matches_the_evaluation_and_chunking_changes_nothing() -> None:
    data = synthetic()
    split = random_split(data.counts, 1, (0.9, 0.1, 0.0))
    models = {
        "ALS": EASE(lam=50.0).fit(split.train),
        "EASE": ItemKNN(k=10, shrink=1.0).fit(split.train),
        "tags (content)": Popularity().fit(split.train),
    }
    ours = hybrid.tune_hybrid(dict(models), split, True, lambda _m: None)
    # every blend of the grid ranked in full by the evaluation's own code
    by_weights = {}
    for weights in hybrid.weight_grid(list(models), "ALS", hybrid.QUICK_STEPS):
        used = {n: w for n, w in weights.items() if w}
        blend = Blend({n: models[n] for n in used}, used).fit(split.train)
        ndcg = evaluate(blend.scores, binary(split.train), split.valid).metrics["ndcg@10"]
        by_weights[tuple(sorted(used.items()))] = ndcg
    best = max(by_weights.values())
    assert ours[1] == pytest.approx(best)
    assert by_weights[tuple(sorted(ours[0].items()))] == pytest.approx(best)

    blend = Blend(models, {"ALS": 1.0, "EASE": 0.3}).fit(data.counts)
    one = hybrid.top_lists(blend, data.counts, 15)
    chunked = hybrid.top_lists(blend, data.counts, 15, chunk=7)
    assert np.array_equal(one[0], chunked[0])
    assert np.allclose(one[1], chunked[1])
