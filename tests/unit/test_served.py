"""The served-list evaluation runs the API's ranking and agrees with the models it serves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from batch.data import TrainData
from batch.foldin import fold_states
from batch.metrics import evaluate
from batch.served import (
    Tuned,
    bundle_from_models,
    context_check,
    dayparts,
    list_metrics,
    prepare_stage,
    served_lists,
    tune_on_split,
)
from batch.split import random_split
from models.bandit import ARMS, Policy, Posterior
from models.ranking import RankConfig


@dataclass
class Factors:
    """A factor model standing in for the hybrid: scores are inner products."""

    users: np.ndarray
    items: np.ndarray

    def fit(self, train: sp.csr_matrix) -> Factors:
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.users[users] @ self.items.T)


def _data(seed: int = 3, users: int = 60, items: int = 90, k: int = 8) -> tuple[TrainData, ...]:
    rng = np.random.default_rng(seed)
    u_f = rng.normal(size=(users, k)).astype(np.float32)
    i_f = rng.normal(size=(items, k)).astype(np.float32)
    affinity = u_f @ i_f.T
    counts = np.zeros((users, items))
    for u in range(users):
        liked = np.argsort(-affinity[u])[:20]
        counts[u, liked] = rng.integers(1, 30, size=liked.size)
    data = TrainData(
        "synthetic",
        [f"u{u}" for u in range(users)],
        [f"t{i}" for i in range(items)],
        sp.csr_matrix(counts),
        {},
    )
    return data, u_f, i_f  # type: ignore[return-value]


def test_collab_only_served_lists_are_the_models_own_lists() -> None:
    data, u_f, i_f = _data()
    split = random_split(data.counts, 7)

    model = Factors(u_f, i_f)
    bundle = bundle_from_models(data, split.train, u_f, i_f, model)
    cfg = RankConfig(artist_gap=0)
    stage = prepare_stage(bundle, data, [split.train], split.valid, cfg)
    row_of = {t: i for i, t in enumerate(data.items)}
    collab_only = {"collab": 1.0}
    lists = served_lists(stage, row_of, lambda _i: (collab_only, 1.0), cfg, n=10)
    ranked = evaluate(model.scores, (split.train > 0).astype(np.float32), split.valid, ks=(10,))
    assert np.array_equal(lists, ranked.lists[:, :10])
    served = list_metrics(lists, stage, split.train, None)
    assert abs(served["ndcg@10"] - ranked.metrics["ndcg@10"]) < 1e-9


def test_later_events_fold_after_earlier_ones_and_fill_the_history() -> None:
    data, u_f, i_f = _data()
    split = random_split(data.counts, 7)
    bundle = bundle_from_models(data, split.train, u_f, i_f, None)
    assert bundle.collab is not None
    users = np.array([0, 1, 2])
    states = fold_states([split.train, split.valid], data, bundle.collab, RankConfig().fold, users)
    for u in users:
        hist = [h[0] for h in states[int(u)].hist]
        train = {data.items[c] for c in split.train.getrow(u).indices}
        valid = {data.items[c] for c in split.valid.getrow(u).indices}
        assert set(hist) == train | valid
        assert set(hist[-len(valid) :]) == valid  # arrived after training
        assert states[int(u)].vec is not None


def test_tuned_policy_caps_what_it_cannot_measure_and_ranks_arms_by_validation() -> None:
    data, u_f, i_f = _data()
    split = random_split(data.counts, 7)
    model = Factors(u_f, i_f)
    bundle = bundle_from_models(data, split.train, u_f, i_f, model)
    als_valid = evaluate(model.scores, split.train > 0, split.valid).lists
    tuned = tune_on_split(
        bundle,
        data,
        split.train,
        split.valid,
        als_valid,
        RankConfig(),
        prior_strength=500.0,
        explore_share=0.05,
    )
    policy = tuned.policy
    assert set(policy.arms) == set(ARMS)
    assert {"content-heavy", "discovery"} <= policy.capped  # no content or live signals here
    assert "collab-heavy" not in policy.capped
    scores = {a: m["ndcg@10"] for a, m in tuned.valid.items()}
    means = {a: p.alpha / (p.alpha + p.beta) for a, p in policy.priors.items()}
    best = max(scores, key=lambda a: scores[a])
    assert means[best] == max(means.values())
    for arm, weights in policy.arms.items():
        assert abs(sum(weights.values()) - 1.0) < 1e-3, arm
    assert 0.0 < tuned.mmr_lambda <= 1.0
    # per-user validation quality is kept for the context check, one value per user
    assert tuned.valid_stage_users is not None
    for arm, per_user in tuned.valid_users.items():
        assert per_user.shape == tuned.valid_stage_users.shape
        assert abs(float(per_user.mean()) - scores[arm]) < 1e-9


def _tuned(valid_users: dict[str, np.ndarray]) -> Tuned:
    policy = Policy(
        ARMS,
        priors={"collab-heavy": Posterior(50.0, 50.0), "balanced": Posterior(49.0, 51.0)},
        capped=frozenset({"realtime-heavy", "content-heavy", "discovery"}),
        explore_share=0.05,
    )
    return Tuned(policy, 1.0, {"collab": 1.0}, {}, [], [], valid_users=valid_users)


def test_context_check_picks_an_arm_per_daypart_and_tests_it_on_held_out_users() -> None:
    rng = np.random.default_rng(0)
    n = 400
    parts = np.repeat(np.arange(4), n // 4)

    # balanced is better in the evening (daypart 3), collab-heavy elsewhere
    def users() -> dict[str, np.ndarray]:
        base = rng.uniform(0.2, 0.3, n)
        other = np.where(parts == 3, base + 0.2, base - 0.05)
        return {a: base for a in ARMS} | {"balanced": other}

    tuned = _tuned(users())
    out = context_check(tuned, parts, users(), parts)
    assert out["measurable"]
    assert out["leader"] == "collab-heavy"
    assert out["dayparts"]["evening"]["arm"] == "balanced"
    assert out["dayparts"]["morning"]["arm"] == "collab-heavy"
    assert out["delta_ndcg@10"] == pytest.approx(0.05, abs=1e-9)  # a quarter of users + 0.2
    assert out["helps"]
    assert out["ci95"][0] > 0

    # no difference between dayparts: the context does not help
    flat = {a: rng.uniform(0.2, 0.3, n) for a in ARMS}
    out = context_check(_tuned(flat), parts, flat, parts)
    assert not out["helps"]
    # unknown time of day everywhere: not measurable
    out = context_check(_tuned(flat), np.full(n, -1), flat, np.full(n, -1))
    assert out == {"measurable": False, "reason": "the interactions have no time of day"}


def test_dayparts_come_from_the_first_held_out_interaction() -> None:
    hour = 3600
    times = sp.csr_matrix(np.array([[0, 2 * hour, 20 * hour], [7 * hour, 0, 0], [0, 0, 0]]))
    target = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1]]))
    users = np.array([0, 1, 2])
    assert dayparts(times, target, users).tolist() == [0, 1, -1]
    assert dayparts(None, target, users).tolist() == [-1, -1, -1]
