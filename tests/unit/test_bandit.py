"""The blend-weight bandit learns which arm works, in a simulated environment."""

from __future__ import annotations

from collections import Counter

import numpy as np

from models.bandit import ARMS, Posterior, reward, thompson


def test_thompson_sampling_finds_the_best_arm_within_a_few_thousand_rounds() -> None:
    rng = np.random.default_rng(42)
    truth = {arm: 0.30 for arm in ARMS} | {"discovery": 0.45}  # one arm is clearly better
    post = {arm: Posterior(1.0, 1.0) for arm in ARMS}
    pulls: Counter[str] = Counter()
    for _ in range(3_000):
        arm, propensity = thompson(post, rng, samples=50)
        assert 0 < propensity <= 1
        pulls[arm] += 1
        liked = rng.random() < truth[arm]
        r = reward("like" if liked else "skip", None, 0.8)
        assert r is not None
        p = post[arm]
        post[arm] = Posterior(p.alpha + r, p.beta + 1 - r)
    assert pulls.most_common(1)[0][0] == "discovery"
    assert pulls["discovery"] > 0.6 * sum(pulls.values())
    assert abs(post["discovery"].mean - 0.45) < 0.05


def test_partial_plays_are_fractional_rewards() -> None:
    rng = np.random.default_rng(0)
    post = {"a": Posterior(1.0 + 0.9 * 500, 1.0 + 0.1 * 500), "b": Posterior(251.0, 251.0)}
    picks = Counter(thompson(post, rng)[0] for _ in range(200))
    assert picks["a"] > 190
