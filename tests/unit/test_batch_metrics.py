"""Ranking and beyond-accuracy metrics against hand-computed cases; splits keep their promises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from batch.metrics import beyond_accuracy, evaluate, list_overlap, rank_metrics, top_k
from batch.split import dated_split, random_split, recbole_sizes, temporal_split


def test_rank_metrics_match_hand_computed_values() -> None:
    # user 0: 3 relevant items, hits at ranks 1 and 3; user 1: one relevant, hit at rank 4;
    # user 2: two relevant, no hit.
    hits = np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    m = rank_metrics(hits, np.array([3, 1, 2]), ks=(2, 4))
    assert m["recall@2"] == pytest.approx([1 / 3, 0, 0])
    assert m["recall@4"] == pytest.approx([2 / 3, 1, 0])
    # DCG@4 = 1 + 1/log2(4); IDCG over min(3, 4) = 3 ideal hits
    assert m["ndcg@4"][0] == pytest.approx(1.5 / (1 + 1 / math.log2(3) + 0.5))
    assert m["ndcg@2"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert m["ndcg@4"][1] == pytest.approx(1 / math.log2(5))
    assert m["mrr@4"] == pytest.approx([1, 0.25, 0])
    assert m["mrr@2"] == pytest.approx([1, 0, 0])
    assert m["hit@2"] == pytest.approx([1, 0, 0])
    assert m["hit@4"] == pytest.approx([1, 1, 0])


def test_evaluate_masks_history_and_ranks_every_item() -> None:
    scores = np.array([[5, 4, 3, 2, 1], [1, 2, 3, 4, 5], [9, 9, 9, 9, 9]], np.float32)
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]))
    target = sp.csr_matrix(np.array([[0, 0, 1, 0, 0], [1, 0, 0, 0, 1], [0, 0, 0, 0, 0]]))
    r = evaluate(lambda u: scores[u], exclude, target, ks=(1, 2))
    assert r.users.tolist() == [0, 1]  # user 2 has nothing held out
    assert r.lists.tolist() == [[1, 2], [4, 3]]  # item 0 masked for user 0
    assert r.metrics["recall@2"] == pytest.approx((1 + 0.5) / 2)
    assert r.metrics["ndcg@2"] == pytest.approx((1 / math.log2(3) + 1 / (1 + 1 / math.log2(3))) / 2)
    assert r.metrics["mrr@2"] == pytest.approx((0.5 + 1) / 2)
    assert r.metrics["hit@1"] == pytest.approx(0.5)


def test_top_k_orders_best_first() -> None:
    s = np.array([[0.1, 0.9, 0.5, 0.7]], np.float32)
    assert top_k(s, None, 3).tolist() == [[1, 3, 2]]


def test_beyond_accuracy_hand_computed() -> None:
    # 4 users x 4 items; item listeners: i0 {u0,u1}, i1 {u0,u1}, i2 {u2}, i3 {u3}
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    lists = np.array([[0, 1], [2, 3]])
    m = beyond_accuracy(lists, train, ["a", "a", "b", None], k=2)
    assert m["coverage@2"] == pytest.approx(1.0)
    # list 0: identical listener vectors -> similarity 1; list 1: disjoint -> 0
    assert m["ild@2"] == pytest.approx((0.0 + 1.0) / 2)
    # popularity shares: i0, i1 = 2/4; i2, i3 = 1/4
    assert m["novelty@2"] == pytest.approx((1 + 1 + 2 + 2) / 4)
    # list 0: one artist of two; list 1: two distinct (unknown artists count as their own)
    assert m["artist_diversity@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert list_overlap(np.array([[1, 2]]), np.array([[2, 3]]), k=2) == pytest.approx(0.5)


def test_recbole_split_sizes() -> None:
    assert recbole_sizes(50) == [40, 5, 5]
    assert recbole_sizes(9) == [7, 1, 1]
    assert recbole_sizes(2) == [1, 0, 1]
    assert recbole_sizes(1) == [1, 0, 0]


def test_random_split_is_disjoint_complete_and_seeded() -> None:
    rng = np.random.default_rng(0)
    counts = sp.random(30, 80, density=0.3, random_state=1, format="csr", dtype=np.float32)
    counts.data = rng.integers(1, 50, counts.nnz).astype(np.float32)
    a, b = random_split(counts, seed=7), random_split(counts, seed=7)
    assert (a.test != b.test).nnz == 0
    assert (random_split(counts, seed=8).test != a.test).nnz > 0
    total = (a.train > 0).astype(int) + a.valid + a.test
    assert total.max() == 1
    assert total.nnz == counts.nnz
    per_user = np.diff(counts.indptr)
    assert np.array_equal(np.diff(a.test.indptr), [recbole_sizes(n)[2] for n in per_user])
    assert a.train.sum() == pytest.approx(counts.multiply(a.train > 0).sum())  # counts kept


def test_temporal_split_puts_the_newest_in_test() -> None:
    counts = sp.csr_matrix(np.ones((1, 10), np.float32))
    times = sp.csr_matrix(np.arange(10, 0, -1, dtype=np.float64)[None, :])  # item 9 oldest
    s = temporal_split(counts, times)
    assert s.test.indices.tolist() == [0]  # newest
    assert s.valid.indices.tolist() == [1]
    dates = sp.csr_matrix(np.array([[0, 0, 5, 6, 7, 8, 9, 10, 11, 12]], np.float64))
    d = dated_split(counts, dates)
    assert set(d.train.indices) >= {0, 1}  # undated pairs stay in train
    assert d.test.indices.tolist() == [9]
