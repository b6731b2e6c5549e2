"""Off-policy evaluation: the estimators on simulated logs whose true arm values are known,
the join of served lists with feedback, and the served-list record."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from models.bandit import ARMS
from models.codec import Reason, decode_record, decode_served, encode_event
from models.events import Dislike, Like, Play, RecContext, ServedItem, ServedList, Skip, Unlike
from models.ope import LoggedList, evaluate, join, position_means
from models.topics import INTERACTIONS, RECOMMENDATIONS, key_of, partition_for, topic_of
from tests.samples import T0

NAMES = list(ARMS)
LENGTHS = (5, 10, 20)
# True chance that a track at the top of a list gets a reward of 1, by arm (rows) and
# listener kind (columns): every arm is best for someone.
THETA = np.array(
    [
        [0.60, 0.20, 0.30, 0.15],
        [0.40, 0.40, 0.35, 0.30],
        [0.25, 0.55, 0.20, 0.35],
        [0.15, 0.30, 0.60, 0.25],
        [0.20, 0.15, 0.25, 0.50],
    ]
)


def _decay(length: int) -> np.ndarray:
    return 1.0 / (1.0 + 0.15 * np.arange(length))


def _true_values() -> dict[str, float]:
    per_length = np.mean([_decay(n).mean() for n in LENGTHS])
    return {a: float(THETA[i].mean() * per_length) for i, a in enumerate(NAMES)}


def _logging(uniform: bool) -> np.ndarray:
    """P(arm | listener kind): favours the arm that is good for the listener, as a
    learning bandit does, so the naive per-arm mean is confounded."""
    if uniform:
        return np.full_like(THETA, 1.0 / len(NAMES))
    e = np.exp(4.0 * THETA)
    return 0.9 * e / e.sum(axis=0) + 0.1 / len(NAMES)


def _simulate(seed: int, n: int = 3000, uniform: bool = False) -> list[LoggedList]:
    rng = np.random.default_rng(seed)
    probs = _logging(uniform)
    kinds = rng.integers(THETA.shape[1], size=n)
    cum = np.cumsum(probs[:, kinds], axis=0)
    arms = (rng.random(n) > cum).sum(axis=0)
    lengths = np.array(LENGTHS)[rng.integers(len(LENGTHS), size=n)]
    out = []
    for i in range(n):
        a, x, length = int(arms[i]), int(kinds[i]), int(lengths[i])
        r = (rng.random(length) < THETA[a, x] * _decay(length)).astype(float)
        out.append(
            LoggedList(f"r{i}", NAMES[a], float(probs[a, x]), tuple(r), int(r.sum()), r.sum())
        )
    return out


@pytest.fixture(scope="module")
def fifty_logs() -> list[list[LoggedList]]:
    return [_simulate(seed) for seed in range(50)]


@pytest.mark.parametrize("estimator", ["ips", "snips", "dr"])
def test_true_arm_values_fall_inside_the_95_intervals(
    fifty_logs: list[list[LoggedList]], estimator: str
) -> None:
    truth = _true_values()
    inside = dict.fromkeys(NAMES, 0)
    for log in fifty_logs:
        est = evaluate(log, NAMES)
        for a in NAMES:
            inside[a] += getattr(est[a], estimator).contains(truth[a])
    # 250 nominal-95% intervals: >= 90% inside overall, and no arm below 80%
    assert sum(inside.values()) >= 0.9 * 50 * len(NAMES), inside
    assert min(inside.values()) >= 40, inside


def test_the_coverage_check_can_fail(fifty_logs: list[list[LoggedList]]) -> None:
    """Ignoring the logged propensities (pretending the arms were uniform) is caught."""
    truth = _true_values()
    inside = 0
    for log in fifty_logs:
        wrong = [LoggedList(x.rec_id, x.arm, 1 / len(NAMES), x.rewards, x.feedback) for x in log]
        est = evaluate(wrong, NAMES)
        inside += sum(est[a].ips.contains(truth[a]) for a in NAMES)
    assert inside < 0.5 * 50 * len(NAMES)
    # and the log is confounded: the naive per-arm mean misses for most arms
    naive = evaluate(fifty_logs[0], NAMES)
    assert sum(abs(naive[a].logged_mean - truth[a]) > 0.02 for a in NAMES) >= 3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ips_of_a_uniform_logging_policy_matches_the_true_values(seed: int) -> None:
    truth = _true_values()
    log = _simulate(seed, n=20_000, uniform=True)
    est = evaluate(log, NAMES)
    for a in NAMES:
        assert est[a].ips.value == pytest.approx(truth[a], abs=0.025), a
        # DR never loses to IPS by much on a well-specified log
        assert est[a].dr.high - est[a].dr.low <= est[a].ips.high - est[a].ips.low + 1e-9
        assert est[a].lists == sum(x.arm == a for x in log)


def test_no_data_gives_no_estimate_rather_than_a_number() -> None:
    est = evaluate([LoggedList("r", "balanced", 0.5, (1.0, 0.0), 1, 1.0)], NAMES)
    assert est["discovery"].lists == 0
    assert est["discovery"].as_dict()["ips"] == {"value": None, "low": None, "high": None}
    assert est["balanced"].feedback_rate == 1.0


def test_position_model_falls_back_to_the_arm_then_overall_mean() -> None:
    arm_idx = np.array([0, 0, 1])
    rewards = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.5, 0.0, 0.0]])
    mask = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    means = position_means(arm_idx, rewards, mask, 3)
    assert means[0].tolist() == [1.0, 0.5, 0.75]  # position 2 unseen: arm 0's mean
    assert means[1].tolist() == [0.5, 0.5, 0.5]
    assert means[2].tolist() == pytest.approx([3.5 / 5] * 3)  # arm 2 unseen: overall


def _served(rec_id: str = "rec-1", user: str = "u1") -> ServedList:
    return ServedList(
        rec_id=rec_id,
        user_id=user,
        occurred_at=T0,
        arm="balanced",
        propensity=0.25,
        items=tuple(ServedItem(track_id=f"t{k}", position=k) for k in range(4)),
        model_versions={"als": "v1", "content": None},
    )


def _ctx(rec_id: str = "rec-1", position: int | None = None) -> RecContext:
    return RecContext(rec_id=rec_id, arm="balanced", position=position)


def test_join_maps_feedback_to_rewards_by_position_latest_wins() -> None:
    t = T0 + timedelta(seconds=5)
    later = t + timedelta(seconds=1)
    events = [
        Play(
            event_id="p0",
            occurred_at=t,
            user_id="u1",
            track_id="t0",
            ms_played=1,
            completion=0.4,
            context=_ctx(position=0),
        ),
        Like(event_id="l0", occurred_at=later, user_id="u1", track_id="t0", context=_ctx()),
        Play(
            event_id="p1",
            occurred_at=t,
            user_id="u1",
            track_id="t1",
            ms_played=1,
            completion=0.95,
            context=_ctx(position=7),
        ),
        Skip(
            event_id="s2", occurred_at=t, user_id="u1", track_id="t2", ms_played=1, context=_ctx()
        ),
        Unlike(event_id="u3", occurred_at=t, user_id="u1", track_id="t3", context=_ctx()),
        Dislike(event_id="d9", occurred_at=t, user_id="u1", track_id="t9", context=_ctx()),
        Like(event_id="lx", occurred_at=t, user_id="u1", track_id="t0", context=_ctx("nope")),
        Like(event_id="nc", occurred_at=t, user_id="u1", track_id="t0"),
    ]
    joined = join([_served(), _served()], events, full_play=0.8)
    [logged] = joined.lists
    assert logged.rewards == (1.0, 1.0, 0.0, 0.0)  # like after the partial play wins
    assert logged.reward == 0.5
    assert logged.feedback == 4
    assert logged.feedback_reward == pytest.approx(0.4 + 1 + 1 + 0)
    assert (joined.feedback_joined, joined.feedback_unmatched) == (4, 2)


def test_join_skips_empty_lists() -> None:
    empty = _served("rec-2").model_copy(update={"items": ()})
    joined = join([empty], [], full_play=0.8)
    assert joined.lists == []
    assert joined.empty_lists == 1


def test_served_list_round_trips_and_shares_the_users_partition() -> None:
    served = _served(user="listener-7")
    decoded = decode_served(encode_event(served), max_bytes=1 << 20)
    assert decoded.events == [served]
    assert topic_of(served) == RECOMMENDATIONS
    assert key_of(served) == "listener-7"
    assert partition_for(key_of(served), 6) == partition_for("listener-7", 6)
    bad = decode_served(
        encode_event(served).replace(b'"propensity":0.25', b'"propensity":0'), max_bytes=1 << 20
    )
    assert bad.events == []
    assert "propensity" in bad.rejected[0].error


def test_served_list_on_an_input_topic_is_an_unknown_type() -> None:
    decoded = decode_record(encode_event(_served()), max_bytes=1 << 20)
    assert decoded.events == []
    assert decoded.rejected[0].reason is Reason.UNKNOWN_TYPE
    assert topic_of(_served()) != INTERACTIONS
