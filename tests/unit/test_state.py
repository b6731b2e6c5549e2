"""The pure folds: user state, link health, bandit rewards."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
import pytest

from models.bandit import ARMS, Posterior, posteriors, reward, thompson
from models.events import Dislike, Like, LinkCheck, LinkStatus, Play, PlaybackFailure, Skip
from models.history import TYPE_CODE, History
from models.linkhealth import LinkHealth, next_link_health
from models.records import decode_link, encode_link
from models.state import (
    FoldConfig,
    ItemInfo,
    UserState,
    apply_interaction,
    artist_signals,
    event_weight,
    fold_batch,
    fold_extra,
    refold,
)
from tests.samples import T0

CFG = FoldConfig(half_life_s=3_600.0)


def _play(i: int, track: str, minutes: float, completion: float = 1.0) -> Play:
    return Play(
        event_id=f"p{i}",
        occurred_at=T0 + timedelta(minutes=minutes),
        user_id="u",
        track_id=track,
        ms_played=1,
        completion=completion,
    )


def _skip(i: int, track: str, minutes: float) -> Skip:
    return Skip(
        event_id=f"s{i}",
        occurred_at=T0 + timedelta(minutes=minutes),
        user_id="u",
        track_id=track,
        ms_played=3_000,
    )


X = {
    "a": np.array([1, 0, 0], np.float32),
    "b": np.array([0, 1, 0], np.float32),
    "c": np.array([0, 0, 1], np.float32),
}
ITEMS = {t: ItemInfo(vector=v) for t, v in X.items()}
ARTIST_OF = {t: f"artist-{t}" for t in X}


def _fold(events: list) -> UserState:
    s = UserState()
    for e in events:
        apply_interaction(s, e, ITEMS[e.track_id], CFG, "m1")
    return s


def test_plays_pull_toward_and_skips_push_away() -> None:
    s = _fold([_play(1, "a", 0), _skip(2, "b", 1)])
    assert s.vec is not None
    assert s.vec[0] > 0.9
    assert s.vec[1] < -0.5
    assert s.session["streak"] == 1
    assert [h[0] for h in s.hist] == ["a", "b"]


def test_fold_is_order_independent_so_late_events_land_the_same() -> None:
    events = [_play(1, "a", 0), _skip(2, "b", 30), _play(3, "c", 90, 0.3), _play(4, "a", 200)]
    reference = _fold(events)
    for perm in itertools.permutations(events):
        s = _fold(list(perm))
        assert s.vec is not None
        assert reference.vec is not None
        np.testing.assert_allclose(s.vec, reference.vec, rtol=1e-5, atol=1e-6)
        assert s.vec_t == reference.vec_t
        assert s.hist == reference.hist


def test_late_event_does_not_roll_the_session_back() -> None:
    s = _fold([_play(1, "a", 100), _skip(2, "b", 101)])
    before = dict(s.session)
    apply_interaction(s, _skip(3, "c", 10), ITEMS["c"], CFG, "m1")
    assert s.session == before


def test_an_event_dated_ahead_does_not_stop_later_ones_counting() -> None:
    # A phone whose clock runs 4 minutes fast (inside the allowed skew), then events
    # from a correct clock: every one still counts in the session and the vector.
    s = _fold([_play(1, "a", 4)])
    for i, minutes in enumerate([1, 2, 3]):
        apply_interaction(s, _skip(10 + i, "b", minutes), ITEMS["b"], CFG, "m1")
    assert s.n == 4
    assert (s.session["skips"], s.session["streak"], s.session["plays"]) == (3, 3, 1)
    assert s.session["last"] == _play(1, "a", 4).occurred_ms  # the clock never runs back
    assert s.vec is not None
    assert s.vec[1] < -1.0  # three skips pushed away from "b", barely decayed


def test_newer_like_wins_over_older_dislike_whatever_the_order() -> None:
    dislike = Dislike(event_id="d", occurred_at=T0, user_id="u", track_id="a", artist=True)
    like = Like(event_id="l", occurred_at=T0 + timedelta(minutes=1), user_id="u", track_id="a")
    for order in ([dislike, like], [like, dislike]):
        s = _fold(order)
        assert "a" in s.liked
        assert "a" not in s.neg_tracks
        assert s.neg_artist_of == {"a": dislike.occurred_ms}


def test_artist_signals_join_the_catalog_at_read_time() -> None:
    s = _fold([_play(1, "a", 0), _skip(2, "b", 10), _skip(3, "b", 20)])
    apply_interaction(
        s,
        Dislike(event_id="d", occurred_at=T0, user_id="u", track_id="c", artist=True),
        ITEMS["c"],
        CFG,
        "m1",
    )
    now = T0.timestamp() * 1000 + 20 * 60_000
    signals = artist_signals(s, ARTIST_OF, int(now), skip_half_life_s=3_600)
    assert signals.skips["artist-b"] == pytest.approx(2 ** (-1 / 6) + 1.0, rel=1e-6)
    assert "artist-a" not in signals.skips
    assert signals.last_played["artist-a"] == _play(1, "a", 0).occurred_ms
    assert signals.blocked == {"artist-c"}
    assert artist_signals(s, {}, int(now)).skips == {}  # unknown tracks: no artist facts


def test_fold_extra_adds_tracks_the_item_space_lacks() -> None:
    s = UserState()
    apply_interaction(s, _play(1, "a", 0), ITEMS["a"], CFG, "m1")
    apply_interaction(s, _play(2, "new", 0), ItemInfo(), CFG, "m1")
    full = fold_extra(s, {"new": X["b"]}, CFG)
    assert full is not None
    np.testing.assert_allclose(full, [1, 1, 0], atol=1e-6)


def test_decay_halves_an_old_pull() -> None:
    s = _fold([_play(1, "a", 0), _play(2, "b", 60)])
    assert s.vec is not None
    assert s.vec[0] == pytest.approx(0.5, rel=1e-4)
    assert s.vec[1] == pytest.approx(1.0)


def test_refold_rebuilds_the_vector_in_a_new_space() -> None:
    s = _fold([_play(1, "a", 0), _skip(2, "b", 60)])
    swapped = {"a": X["b"], "b": X["a"]}
    refold(s, swapped, "m2", CFG)
    assert s.model == "m2"
    assert s.vec is not None
    assert s.vec[1] > 0 > s.vec[0]


def test_unknown_track_still_updates_history_without_a_vector() -> None:
    s = UserState()
    apply_interaction(s, _play(1, "zzz", 0), ItemInfo(), CFG, "m1")
    assert s.vec is None
    assert s.hist[0][0] == "zzz"
    assert s.n == 1


def _check(i: int, status: LinkStatus, minutes: float, code: int | None = None) -> LinkCheck:
    return LinkCheck(
        event_id=f"c{i}",
        occurred_at=T0 + timedelta(minutes=minutes),
        track_id="t",
        url="http://h/a",
        status=status,
        http_code=code,
        redirect_url="http://h/b" if status is LinkStatus.MOVED else None,
    )


def test_link_state_machine_dies_moves_and_recovers() -> None:
    s = LinkHealth()
    assert s.status == "unknown"
    s = next_link_health(s, _check(1, LinkStatus.UNKNOWN, 1))
    s = next_link_health(s, _check(2, LinkStatus.UNKNOWN, 2))
    assert s.status == "unknown"
    s = next_link_health(s, _check(3, LinkStatus.UNKNOWN, 3))
    assert (s.status, s.streak, s.failures) == ("dead", 3, 3)
    s = next_link_health(s, _check(4, LinkStatus.VALID, 4, 200))
    assert (s.status, s.streak) == ("valid", 0)
    s = next_link_health(s, _check(5, LinkStatus.MOVED, 5, 301))
    assert (s.status, s.redirect_url) == ("moved", "http://h/b")
    fail = PlaybackFailure(
        event_id="f",
        occurred_at=T0 + timedelta(minutes=6),
        track_id="t",
        error="http_401",
        http_code=401,
    )
    s = next_link_health(s, fail)
    assert s.status == "requires_auth"
    assert decode_link({k.encode(): v.encode() for k, v in encode_link(s).items()}) == s
    assert decode_link({}) == LinkHealth()


def test_late_failure_cannot_undo_a_newer_success() -> None:
    s = next_link_health(LinkHealth(), _check(1, LinkStatus.VALID, 10, 200))
    late = PlaybackFailure(
        event_id="f", occurred_at=T0, track_id="t", error="http_404", http_code=404
    )
    s2 = next_link_health(s, late)
    assert s2.status == "valid"
    assert s2.failures == 1


def test_reward_mapping() -> None:
    assert reward("like", None, 0.8) == 1.0
    assert reward("play", 0.9, 0.8) == 1.0
    assert reward("play", 0.4, 0.8) == pytest.approx(0.4)
    assert reward("skip", None, 0.8) == 0.0
    assert reward("dislike", None, 0.8) == 0.0
    assert reward("unlike", None, 0.8) is None


def test_posteriors_sum_partitions_and_thompson_prefers_the_better_arm() -> None:
    post = posteriors(
        [
            {b"balanced:a": b"90000000", b"balanced:b": b"10000000"},
            {"discovery:a": "5000000", "discovery:b": "95000000"},
        ]
    )
    assert post["balanced"] == Posterior(91.0, 11.0)
    assert set(post) == set(ARMS)
    rng = np.random.default_rng(0)
    picks = [thompson(post, rng)[0] for _ in range(300)]
    assert picks.count("balanced") > 200
    _arm, propensity = thompson(post, rng)
    assert 0 < propensity <= 1


def test_batched_fold_is_bit_identical_to_event_by_event() -> None:
    rng = np.random.default_rng(5)
    vectors = {f"t{i}": rng.normal(size=8).astype(np.float32) for i in range(20)}
    events = []
    for i in range(300):  # a shuffled stream: late events, repeats, several users
        user = f"u{rng.integers(0, 7)}"
        minutes = float(rng.uniform(0, 600))
        track = f"t{rng.integers(0, 20)}"
        events.append(
            _play(i, track, minutes, float(rng.uniform(0, 1))).model_copy(update={"user_id": user})
        )
    sequential: dict[str, UserState] = {}
    for e in events:
        apply_interaction(
            sequential.setdefault(e.user_id, UserState()),
            e,
            ItemInfo(vectors[e.track_id]),
            CFG,
            "m",
        )
    for size in (1, 13, 300):
        batched: dict[str, UserState] = {}
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            steps: dict[str, list[tuple[np.ndarray, float, int]]] = {}
            for e in chunk:
                batched.setdefault(e.user_id, UserState(model="m"))
                steps.setdefault(e.user_id, []).append(
                    (vectors[e.track_id], event_weight(e, CFG), e.occurred_ms)
                )
            users = list(steps)
            fold_batch([batched[u] for u in users], [steps[u] for u in users], CFG.half_life_s)
        for user, state in sequential.items():
            assert state.vec is not None
            assert batched[user].vec is not None
            assert state.vec.tobytes() == batched[user].vec.tobytes()
            assert state.vec_t == batched[user].vec_t


def test_history_keeps_time_order_and_the_newest_entries() -> None:
    h = History()
    for track, t in [("b", 20), ("a", 30), ("c", 10), ("a", 20), ("d", 40)]:
        h.add(track, t, TYPE_CODE["play"], 1.0, limit=4)
    assert [(track, t) for track, t, _k, _w in h] == [("a", 20), ("b", 20), ("a", 30), ("d", 40)]
    assert h[0] == ("a", 20, "play", 1.0)
    assert [e[0] for e in reversed(h)] == ["d", "a", "b", "a"]
    assert len(h) == 4
    times, kinds, weights = h.columns()
    assert times.tolist() == [20, 20, 30, 40]
    assert kinds.tolist() == [0, 0, 0, 0]
    assert weights.tolist() == [1.0] * 4


def test_histories_differ_by_the_sign_of_a_zero_weight() -> None:
    assert History.of([["a", 1, "play", 0.0]]) == History.of([("a", 1, "play", 0.0)])
    assert History.of([["a", 1, "play", 0.0]]) != History.of([["a", 1, "play", -0.0]])
    with pytest.raises(ValueError, match="different lengths"):
        History.from_arrays(["a"], np.array([1, 2]), np.array([0]), np.array([1.0]))
