"""``encore eval`` on real public data: the report is written and its numbers are sane."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from batch.als import ALS
from batch.cf import Popularity
from batch.data import from_dataset
from batch.datasets import read_lastfm
from batch.metrics import evaluate
from batch.split import random_split
from batch.tags import first_tag_dates, item_tags, read_assignments
from encore.train_cli import app

pytestmark = pytest.mark.slow


def test_eval_movielens_quick_writes_a_sane_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "--dataset", "movielens-100k", "--quick", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    md = (tmp_path / "random-quick.md").read_text()
    assert md.startswith(
        "Made with: `encore eval --dataset movielens-100k --protocol random --quick`"
    )
    for png in ("accuracy", "lightgcn", "tradeoff"):
        assert (tmp_path / f"random-quick-{png}.png").stat().st_size > 10_000
    raw = json.loads((tmp_path / "random-quick.json").read_text())
    rows = {r["model"]: r["test"] for r in raw["rows"]}
    assert set(rows) >= {"popularity", "item-kNN", "ALS", "LightGCN", "hybrid", "EASE"}
    assert any(name.startswith("fold-in") for name in rows)
    for name, m in rows.items():
        for key in ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hit@10", "mrr@10"):
            assert 0.0 <= m[key] <= 1.0, (name, key)
        assert m["recall@20"] >= m["recall@10"]
        assert 0.0 < m["coverage@10"] <= 1.0
        assert m["novelty@10"] > 0
        assert m["users"] > 900  # nearly all 943 users have test items
    # published MovieLens-100k full-ranking results put good models near R@10 0.2-0.3
    assert 0.15 < rows["ALS"]["recall@10"] < 0.45
    assert 0.05 < rows["popularity"]["recall@10"] < rows["ALS"]["recall@10"]
    assert rows["EASE"]["ndcg@10"] > rows["item-kNN"]["ndcg@10"] > rows["popularity"]["ndcg@10"]
    assert rows["hybrid"]["ndcg@10"] > rows["item-kNN"]["ndcg@10"]
    assert raw["split"]["seed"] == 2020


def test_eval_movielens_temporal_split_orders_by_time() -> None:
    from batch.evaluate import load, make_split

    data = load("movielens-100k", None)
    split = make_split(data, "temporal", 0, None)
    assert data.times is not None
    times = data.times.tocsr()
    newest_train = times.multiply(split.train > 0).max(axis=1).toarray().ravel()
    test_times = times.multiply(split.test > 0).tocsr()
    oldest_test = np.array([
        test_times[u].data.min() if test_times[u].nnz else np.inf for u in range(times.shape[0])
    ])  # fmt: skip
    assert np.all(newest_train <= oldest_test)


def test_lastfm_als_beats_popularity_without_tag_leaks(lastfm_dir: Path) -> None:
    data = from_dataset(read_lastfm(lastfm_dir))
    split = random_split(data.counts, seed=2020)
    assert split.info["test"] == 9_270  # RecBole's split sizes on 92,834 pairs
    als = ALS(seed=2020).fit(split.train)
    got = evaluate(als.scores, split.train_valid, split.test).metrics
    pop = evaluate(Popularity().fit(split.train).scores, split.train_valid, split.test).metrics
    assert got["recall@10"] > 0.2 > pop["recall@10"]
    assert got["ndcg@10"] > 0.2 > pop["ndcg@10"]

    a = read_assignments(lastfm_dir, data.users, data.items)
    held = (split.valid + split.test).tocsr()
    tags = item_tags(a, data.counts.shape, held)
    assert 0 < tags.sum() < a.users.size  # held-out pairs' tags are gone
    dated = first_tag_dates(a, data.counts.shape)
    share = dated.multiply(data.counts > 0).nnz / data.counts.nnz
    assert 0.15 < share < 0.3  # about a fifth of the pairs carry a date
