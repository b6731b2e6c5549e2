"""Every model learns a planted signal that popularity cannot see, and a seed fixes the result."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from batch.als import ALS
from batch.cf import EASE, Blend, ItemKNN, Popularity, TagKNN, tag_matrix
from batch.data import binary, confidence, weighting
from batch.lightgcn import LightGCN
from batch.metrics import evaluate
from batch.split import Split, random_split

N_USERS, N_ITEMS, GROUPS = 120, 60, 4


def planted() -> tuple[Split, list[list[str]]]:
    """Users listen inside their group's items; a few globally popular items are noise."""
    rng = np.random.default_rng(3)
    rows, cols, vals = [], [], []
    size = N_ITEMS // GROUPS
    for u in range(N_USERS):
        g = u % GROUPS
        items = rng.choice(np.arange(g * size, (g + 1) * size), size=8, replace=False)
        noise = rng.choice(np.arange(N_ITEMS), size=2, replace=False)
        for i in {*items.tolist(), *noise.tolist()}:
            rows.append(u)
            cols.append(i)
            vals.append(float(rng.integers(1, 40)))
    counts = sp.csr_matrix((vals, (rows, cols)), shape=(N_USERS, N_ITEMS), dtype=np.float32)
    tags = [[f"group{i // size}", "music"] for i in range(N_ITEMS)]
    return random_split(counts, seed=1), tags


@pytest.fixture(scope="module")
def data() -> tuple[Split, list[list[str]]]:
    return planted()


def ndcg(model: object, split: Split) -> float:
    return evaluate(model.scores, split.train_valid, split.test).metrics["ndcg@10"]  # type: ignore[attr-defined]


def small_gcn(seed: int = 0) -> LightGCN:
    return LightGCN(
        factors=16, layers=2, lr=0.02, batch_size=256, epochs=60, eval_every=5, seed=seed
    )


MODELS = {
    "item-knn": lambda tags: ItemKNN(k=50, shrink=5.0),
    "ease": lambda tags: EASE(lam=50.0),
    "als": lambda tags: ALS(factors=8, regularization=1.0, iterations=10, scheme="log", seed=0),
    "tags": lambda tags: TagKNN(tag_matrix(tags)[0], k=20, shrink=1.0),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_beats_popularity_on_a_planted_signal(
    name: str, data: tuple[Split, list[list[str]]]
) -> None:
    split, tags = data
    pop = ndcg(Popularity().fit(split.train), split)
    model = MODELS[name](tags)
    model.fit(split.train)
    assert ndcg(model, split) > pop + 0.1, name


def test_lightgcn_beats_popularity_and_stops_early(data: tuple[Split, list[list[str]]]) -> None:
    split, _ = data
    pop = ndcg(Popularity().fit(split.train), split)
    model = small_gcn().fit(split.train, split.valid)
    assert ndcg(model, split) > pop + 0.1
    evaluated = [r for r in model.curve if "valid_ndcg@10" in r]
    assert evaluated
    assert model.best_epoch % 5 == 0
    assert model.best_valid == pytest.approx(max(r["valid_ndcg@10"] for r in evaluated))


def test_hybrid_blend_beats_popularity(data: tuple[Split, list[list[str]]]) -> None:
    split, tags = data
    als = ALS(factors=8, regularization=1.0, iterations=10, scheme="log").fit(split.train)
    tag = TagKNN(tag_matrix(tags)[0], k=20).fit(split.train)
    blend = Blend({"als": als, "tags": tag}, {"als": 1.0, "tags": 0.5}).fit(split.train)
    pop = ndcg(Popularity().fit(split.train), split)
    assert ndcg(blend, split) > pop + 0.1


def test_same_seed_same_model(data: tuple[Split, list[list[str]]]) -> None:
    split, _ = data
    a = ALS(factors=8, regularization=1.0, iterations=5, seed=42).fit(split.train)
    b = ALS(factors=8, regularization=1.0, iterations=5, seed=42).fit(split.train)
    c = ALS(factors=8, regularization=1.0, iterations=5, seed=43).fit(split.train)
    assert np.array_equal(a.item_factors, b.item_factors)
    assert not np.array_equal(a.item_factors, c.item_factors)
    g1 = small_gcn(seed=5).fit(split.train, split.valid)
    g2 = small_gcn(seed=5).fit(split.train, split.valid)
    assert g1.best_epoch == g2.best_epoch
    assert np.array_equal(g1.item_factors, g2.item_factors)
    assert np.array_equal(
        random_split(split.train, 9).test.indices, random_split(split.train, 9).test.indices
    )


def test_confidence_weightings() -> None:
    counts = sp.csr_matrix(np.array([[1.0, 0.0, 9.0], [3.0, 1.0, 0.0]], np.float32))
    assert binary(counts).toarray().tolist() == [[1, 0, 1], [1, 1, 0]]
    assert weighting(counts, "log").data == pytest.approx(np.log1p(counts.data))
    # bm25 with items as documents: idf over users, length over items
    bm = weighting(counts, "bm25").toarray()
    n_docs, k1, b = 3, 100.0, 0.8
    item_len = np.array([4.0, 1.0, 9.0])
    idf = np.log(n_docs) - np.log1p(np.array([2, 2]))  # each user has 2 items
    norm = (1 - b) + b * item_len / item_len.mean()
    expect = counts.toarray() * (k1 + 1) / (k1 * norm[None, :] + counts.toarray()) * idf[:, None]
    assert bm == pytest.approx(np.where(counts.toarray() > 0, expect, 0.0), rel=1e-5)
    c = confidence(counts, "log", alpha=2.0)
    assert c.data == pytest.approx(1 + 2 * np.log1p(counts.data))
    with pytest.raises(ValueError, match="unknown"):
        weighting(counts, "tfidf")
