"""The blend-weight bandit learns which arm works, in a simulated environment."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from models.bandit import (
    ARMS,
    FLAT,
    REWARD_SCALE,
    Policy,
    Posterior,
    choose,
    posteriors,
    priors_from_scores,
    propensities,
    request_seed,
    reward,
    thompson,
)

SCORES = {
    "balanced": 0.30,
    "collab-heavy": 0.29,
    "realtime-heavy": 0.25,
    "content-heavy": 0.20,
    "discovery": 0.10,
}


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


def test_same_seed_same_arm_and_propensity_on_refresh() -> None:
    policy = Policy.from_scores(SCORES, strength=20)
    post = posteriors([], policy.arms, policy.priors)
    for i in range(50):
        seed = request_seed("u7", 1_700_000_000, i, "als:3")
        assert choose(policy, post, seed) == choose(policy, post, seed)
    # a fresh but equal policy and posterior (another API process) agrees too
    again = Policy.from_json(json.loads(json.dumps(policy.to_json())))
    seed = request_seed("u7", 1_700_000_000, 0, "als:3")
    assert choose(again, posteriors([], again.arms, again.priors), seed) == choose(
        policy, post, seed
    )


def test_different_seeds_spread_over_the_arms() -> None:
    policy = Policy.default()
    post = {arm: Posterior(5.0, 5.0) for arm in ARMS}
    picks = Counter(choose(policy, post, request_seed("u", i))[0] for i in range(2_000))
    assert set(picks) == set(ARMS)
    assert min(picks.values()) > 2_000 / len(ARMS) * 0.7


def test_bounded_exploration_serves_the_leader_and_capped_arms_only_when_exploring() -> None:
    # the capped arms look far better live; they still never lead
    post = {arm: Posterior(20.0, 30.0) for arm in ARMS}
    post["balanced"] = Posterior(26.0, 24.0)  # the leader: highest mean among uncapped arms
    post["discovery"] = post["content-heavy"] = Posterior(90.0, 10.0)
    policy = Policy(ARMS, capped=frozenset({"discovery", "content-heavy"}), explore_share=0.05)
    n = 4_000
    picks = Counter(choose(policy, post, request_seed("user", i))[0] for i in range(n))
    slack = 3 * math.sqrt(0.05 * 0.95 / n)  # three standard errors
    others = n - picks["balanced"]
    assert others / n <= 0.05 + slack
    assert others / n >= 0.05 - slack
    # when exploring, Thompson picks the (live) best arms, capped or not
    assert picks["discovery"] > 0
    assert picks["content-heavy"] > 0
    greedy = Policy(ARMS, capped=frozenset({"discovery"}), explore_share=0.0)
    assert {choose(greedy, post, request_seed(i))[0] for i in range(500)} == {"content-heavy"}
    probs = propensities(greedy, post, request_seed(0))
    assert probs["content-heavy"] == 1.0
    assert sum(probs.values()) == 1.0
    # plain Thompson (the default) lets a capped arm that looks better win most draws
    thompson_policy = Policy(ARMS, capped=frozenset({"discovery"}))
    assert thompson_policy.explore_share == 1.0
    picks = Counter(choose(thompson_policy, post, request_seed("t", i))[0] for i in range(500))
    assert picks["discovery"] > 150


def test_the_leader_follows_live_feedback() -> None:
    policy = Policy.from_scores(SCORES, strength=20, explore_share=0.05)
    prior = posteriors([], policy.arms, policy.priors)
    assert max(prior, key=lambda a: prior[a].mean) == "balanced"
    seed = request_seed("u", 0)
    assert choose(policy, prior, seed)[0] == "balanced"
    # 400 plays on collab-heavy, all full plays; 400 skips on balanced
    sums = [{"collab-heavy:a": 400 * REWARD_SCALE, "balanced:b": 400 * REWARD_SCALE}]
    live = posteriors(sums, policy.arms, policy.priors)
    picks = Counter(choose(policy, live, request_seed("u", i))[0] for i in range(1_000))
    assert picks["collab-heavy"] > 900


def test_propensities_sum_to_one_and_match_how_often_each_arm_is_picked() -> None:
    policy = Policy(ARMS, capped=frozenset({"discovery"}), explore_share=0.1)
    post = {arm: Posterior(20.0 + 3 * i, 20.0) for i, arm in enumerate(ARMS)}
    for i in range(20):
        probs = propensities(policy, post, request_seed(i))
        assert math.isclose(sum(probs.values()), 1.0)
        arm, p = choose(policy, post, request_seed(i))
        assert p == probs[arm] > 0
    assert 0 < probs["discovery"] <= 0.1  # capped: only when exploring
    assert probs["content-heavy"] >= 0.9  # the leader: best mean among uncapped arms
    n = 3_000
    reported: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for i in range(n):
        arm, p = choose(policy, post, request_seed("s", i), samples=128)
        reported[arm].append(p)
    mean_reported = {arm: float(np.mean(ps)) if ps else 0.0 for arm, ps in reported.items()}
    assert sum(mean_reported.values()) == pytest.approx(1.0, abs=0.05)
    for arm, ps in reported.items():  # each estimate agrees with the pick frequency
        assert len(ps) / n == pytest.approx(mean_reported[arm], abs=0.03)


def test_thompson_part_never_reports_zero_propensity() -> None:
    post = {arm: Posterior(1.0, 1_000.0) for arm in ARMS} | {"balanced": Posterior(1000.0, 1.0)}
    policy = Policy.default()
    for i in range(300):
        arm, p = choose(policy, post, request_seed(i), samples=8)
        assert p > 0
        assert arm == "balanced" or p >= 1 / 8


def test_priors_from_scores_follow_the_scores_and_the_strength() -> None:
    weak = priors_from_scores(SCORES, strength=10)
    strong = priors_from_scores(SCORES, strength=100)
    order = sorted(SCORES, key=lambda a: -SCORES[a])
    assert [round(weak[a].mean, 6) for a in order] == sorted(
        (round(weak[a].mean, 6) for a in order), reverse=True
    )
    assert weak["balanced"].mean == pytest.approx(0.5)
    assert weak["discovery"].mean == pytest.approx(0.5 * 0.10 / 0.30)
    for arm in SCORES:
        assert weak[arm].alpha + weak[arm].beta == pytest.approx(10)
        assert strong[arm].alpha + strong[arm].beta == pytest.approx(100)
        assert strong[arm].mean == pytest.approx(weak[arm].mean)
    partial = priors_from_scores({"balanced": 0.3, "discovery": 0.0}, strength=50, base=0.6)
    assert partial["balanced"].mean == pytest.approx(0.6)
    assert 0 < partial["discovery"].mean < 0.05  # a zero score is still a valid Beta
    no_score = partial["collab-heavy"]  # weak: mean base, 2 pseudo-observations
    assert (no_score.alpha, no_score.beta) == pytest.approx((1.2, 0.8))
    with pytest.raises(ValueError, match="strength"):
        priors_from_scores(SCORES, strength=0)
    with pytest.raises(ValueError, match="score of arm 'balanced'"):
        priors_from_scores({"balanced": float("nan")}, strength=5)


def test_posteriors_add_live_sums_to_the_priors_on_the_live_scale() -> None:
    priors = priors_from_scores(SCORES, strength=20)
    assert posteriors([], ARMS, priors) == priors  # no live data: as published
    sums = [{b"balanced:a": str(3 * REWARD_SCALE).encode(), b"balanced:b": b"500000"}]
    post = posteriors(sums, ARMS, priors)
    rate = (3 + 1) / (3.5 + 2)  # pooled live rate, Beta(1, 1) on the totals
    for arm in ARMS:  # each prior's mean scaled by rate / 0.5, its strength kept
        p = priors[arm]
        mean = min(p.mean * rate / 0.5, 0.99)
        live = (3, 0.5) if arm == "balanced" else (0, 0)
        want = Posterior(20 * mean + live[0], 20 * (1 - mean) + live[1])
        assert post[arm].alpha == pytest.approx(want.alpha)
        assert post[arm].beta == pytest.approx(want.beta)
    assert posteriors(sums)["balanced"] == Posterior(4.0, 1.5)  # default prior: Beta(1, 1)


def test_the_offline_leader_keeps_its_lead_when_live_rewards_are_low() -> None:
    # every arm is rewarded 30% of the time live; the offline ranking should stand
    policy = Policy.from_scores(SCORES, strength=1_000, explore_share=0.05)
    a = {arm: 0 for arm in ARMS}
    b = {arm: 0 for arm in ARMS}
    leaders = []
    for step in range(2_000):
        post = posteriors(
            [{f"{k}:a": v for k, v in a.items()} | {f"{k}:b": v for k, v in b.items()}],
            policy.arms,
            policy.priors,
        )
        arm, _p = choose(policy, post, request_seed("u", step))
        won = (step * 7919) % 10 < 3  # a fixed 30% of the feedback is a full play
        a[arm] += REWARD_SCALE if won else 0
        b[arm] += 0 if won else REWARD_SCALE
        leaders.append(max((x for x in ARMS if x not in policy.capped), key=lambda x: post[x].mean))
    assert leaders[-1] == "balanced"  # the best offline arm (SCORES)
    assert leaders.count("balanced") > 0.95 * len(leaders)


def test_policy_from_scores_caps_arms_under_ninety_percent_of_the_best() -> None:
    policy = Policy.from_scores(SCORES, strength=20, explore_share=0.05)
    assert policy.capped == {"realtime-heavy", "content-heavy", "discovery"}  # < 0.27
    assert policy.priors["balanced"].mean == pytest.approx(0.5)
    default = Policy.default()
    assert default.capped == frozenset()
    assert dict(default.priors) == {arm: FLAT for arm in ARMS}
    assert {a: dict(w) for a, w in default.arms.items()} == ARMS


def test_policy_json_round_trip() -> None:
    policy = Policy.from_scores(SCORES, strength=20, explore_share=0.1)
    data = json.loads(json.dumps(policy.to_json()))
    assert Policy.from_json(data) == policy
    assert Policy.from_json(data).to_json() == policy.to_json()
    assert Policy.from_json({"arms": ARMS}) == Policy.default()


def _valid() -> dict[str, Any]:
    return json.loads(json.dumps(Policy.from_scores(SCORES, strength=20).to_json()))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["arms"]["balanced"].update(colab=0.1), "unknown signal"),
        (lambda d: d["arms"]["balanced"].update(collab=-0.1), "finite and >= 0"),
        (lambda d: d["arms"]["balanced"].update(collab=float("inf")), "finite and >= 0"),
        (lambda d: d["arms"]["balanced"].update(collab="0.3"), "must be a number"),
        (lambda d: d["arms"].update(mystery={"collab": 1.0}), "unknown arm 'mystery'"),
        (lambda d: d["arms"].clear(), "arms is empty"),
        (lambda d: d.update(explore_share=1.5), r"explore_share must be in \[0, 1\]"),
        (lambda d: d.update(explore_share=-0.01), r"explore_share must be in \[0, 1\]"),
        (lambda d: d.update(explore_share=float("nan")), "explore_share"),
        (lambda d: d.update(capped=["mystery"]), "capped: arms not in policy.arms"),
        (lambda d: d.update(capped=list(ARMS)), "every arm is capped"),
        (lambda d: d["priors"].update(balanced={"alpha": 0, "beta": 1}), "finite and > 0"),
        (lambda d: d["priors"].update(balanced={"alpha": 1}), r"priors\['balanced'\]"),
        (lambda d: d.update(extra=1), "unknown fields"),
    ],
)
def test_policy_from_json_says_what_is_wrong(change: Any, message: str) -> None:
    data = _valid()
    change(data)
    with pytest.raises(ValueError, match=message):
        Policy.from_json(data)


def test_bench_simulation_small_run_has_its_structure_and_learns() -> None:
    from bench.bandit import render, run, simulate

    result = run(seeds=(0, 1), rounds=300)
    assert set(result["variants"]) == {"flat", "priors", "bounded"}
    assert {"cores", "cpu", "python"} <= set(result["machine"])
    assert result["refresh"]["choose"] == 0.0
    for v in result["variants"].values():
        assert len(v["runs"]) == 2
        for r in v["runs"]:
            assert sum(r["pulls"].values()) == 300
            assert r["tail_rounds"] == 60
            assert r["regret"] == r["regret_curve"][-1]
            assert all(b >= a for a, b in itertools.pairwise(r["regret_curve"]))
        assert v["regret"]["min"] <= v["regret"]["median"] <= v["regret"]["max"]
    assert "| policy |" in render(result)

    truth = {arm: 0.3 for arm in ARMS} | {"discovery": 0.8}  # a large margin
    flat = simulate(Policy.default(), seed=3, rounds=400, delay=20, truth=truth, users=50)
    assert flat["best_share"] > 2 / len(ARMS)  # chance is 1 / 5
    assert flat["best_share_tail"] > 0.6
