"""User state and the pure fold of one interaction into it.

The state depends on the user's interaction events and the item space (a
versioned artifact) only, never on the catalog topic: catalog facts such as a
track's artist are joined when the state is read (:func:`artist_signals`). So
the state is the same whatever the timing between topics, live or in replay.

The real-time taste vector is a signed, time-decayed sum of item vectors::

    S(t) = sum_i  w_i * x_i * 2 ** (-(t - t_i) / half_life)

kept as ``(S, t_ref)``. Why this and not an ALS fold-in over the history:

* it is O(dim) per event, where a fold-in solves a dim x dim system per event;
* it handles negative feedback (skips, dislikes push away), which ALS's
  positive-only confidence model cannot express;
* it is commutative: a late event folds in with its own decay without moving
  the clock, so out-of-order delivery and replays give the same vector.

Tracks the item space does not know (too new for the last training) are left
out of ``S``; readers add their contribution from the weighted history with
:func:`fold_extra` and the catalog's projected vectors. Its ranking quality
against batch ALS user factors is measured by ``encore eval`` (row "fold-in").
When the item space changes (a new model), :func:`refold` rebuilds the vector
from the weighted history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.history import TYPE_CODE, History

NEG_LIMIT = 500
LIKED_LIMIT = 500


@dataclass(frozen=True, slots=True)
class FoldConfig:
    """Parameters of the fold (from ``StreamSettings``)."""

    half_life_s: float = 7 * 86_400.0
    session_gap_s: float = 30 * 60.0
    full_play: float = 0.8
    history_len: int = 200


def fold_config(settings: Any) -> FoldConfig:
    """Fold parameters from a settings tree (its ``stream`` section)."""
    s = settings.stream
    return FoldConfig(
        half_life_s=s.half_life_s,
        session_gap_s=s.session_gap_s,
        full_play=s.full_play,
        history_len=s.history_len,
    )


@dataclass(frozen=True, slots=True)
class ItemInfo:
    """What the fold needs to know of a track: its vector in the item space, if any."""

    vector: np.ndarray | None = None


@dataclass
class UserState:
    """Everything Encore keeps about one listener."""

    vec: np.ndarray | None = None
    vec_t: int = 0
    model: str = ""
    hist: History = field(default_factory=History)
    session: dict[str, int] = field(default_factory=dict)
    neg_tracks: dict[str, int] = field(default_factory=dict)
    neg_artist_of: dict[str, int] = field(default_factory=dict)  # block the artist of these
    liked: dict[str, int] = field(default_factory=dict)
    n: int = 0
    last_ms: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.hist, History):  # entries given as (track, ms, type, weight)
            self.hist = History.of(self.hist)


def event_weight(event: Any, cfg: FoldConfig) -> float:
    """Signed pull of an interaction on the taste vector.

    Full play: 1 + ln(count); partial play with completion c: c - 0.5; skip:
    -0.3 to -0.8 (earlier skips push harder); like +1.5; unlike -1.5 (undoes a
    like); dislike -2.
    """
    if event.type == "play":
        c: float = event.completion_ratio
        return 1.0 + math.log(event.count) if c >= cfg.full_play else c - 0.5
    if event.type == "skip":
        played: int = event.ms_played
        return -0.3 - 0.5 * (1.0 - min(played / 30_000.0, 1.0))
    if event.type == "like":
        return 1.5
    if event.type == "unlike":
        return -1.5
    if event.type == "dislike":
        return -2.0
    raise TypeError(f"not an interaction: {event.type}")


def _decay(dt_ms: float, half_life_s: float) -> float:
    return float(2.0 ** (-dt_ms / (half_life_s * 1000.0)))


def fold_vector(
    vec: np.ndarray | None, vec_t: int, x: np.ndarray, w: float, t: int, half_life_s: float
) -> tuple[np.ndarray, int]:
    """Add ``w * x`` at time ``t`` to the decayed sum ``(vec, vec_t)``; order-independent."""
    x = x.astype(np.float32, copy=False)
    if vec is None:
        return (w * x).astype(np.float32), t
    if t >= vec_t:
        return (vec * np.float32(_decay(t - vec_t, half_life_s)) + np.float32(w) * x), t
    return vec + np.float32(w * _decay(vec_t - t, half_life_s)) * x, vec_t


def _trim(d: dict[str, Any], limit: int, when: Any = lambda v: v) -> None:
    if len(d) > limit:
        for k in sorted(d, key=lambda k: (when(d[k]), k))[: len(d) - limit]:
            del d[k]


def apply_interaction(
    state: UserState, event: Any, item: ItemInfo, cfg: FoldConfig, model: str
) -> UserState:
    """Fold one interaction into a user's state (in place; returns it).

    Late events (older than what the state already reflects) still count where
    counting is commutative (vector, history, negatives by their own times) and in
    the session they fall in, but never move the session clock backwards. Events
    dated further ahead than the allowed clock skew never get here: the decoders
    dead-letter them (``future_timestamp``), since no later event could outweigh them.
    """
    t = event.occurred_ms
    w = event_weight(event, cfg)
    if model and state.model != model:
        state.vec, state.vec_t, state.model = None, 0, model
    if item.vector is not None and model:
        state.vec, state.vec_t = fold_vector(
            state.vec, state.vec_t, item.vector, w, t, cfg.half_life_s
        )
    apply_bookkeeping(state, event, t, w, cfg)
    return state


def apply_bookkeeping(state: UserState, event: Any, t: int, w: float, cfg: FoldConfig) -> None:
    """Everything but the vector: history, session, likes and dislikes, counters."""
    state.hist.add(event.track_id, t, TYPE_CODE[event.type], round(w, 4), cfg.history_len)
    _session(state, event, t, cfg)
    _feedback(state, event, t)
    state.n += 1
    if t > state.last_ms:
        state.last_ms = t


def fold_batch(
    states: list[UserState], steps: list[list[tuple[np.ndarray, float, int]]], half_life_s: float
) -> None:
    """Fold many users' vectors at once, bit-identical to :func:`fold_vector` per event.

    ``steps[i]`` lists user i's ``(item vector, weight, time)`` in event order. The
    k-th events of all users are folded together with the same float32 operations
    :func:`fold_vector` uses, so results do not depend on how events were batched.
    """
    by_depth = sorted(range(len(steps)), key=lambda i: -len(steps[i]))
    depth = len(steps[by_depth[0]]) if steps else 0
    active = len(by_depth)
    for k in range(depth):
        while len(steps[by_depth[active - 1]]) <= k:
            active -= 1  # users with fewer than k + 1 events are done
        fresh, later, earlier = [], [], []
        for i in by_depth[:active]:
            seq = steps[i]
            x, w, t = seq[k]
            st = states[i]
            if st.vec is None:
                fresh.append((i, x, w, t))
            elif t >= st.vec_t:
                later.append((i, x, w, t, _decay(t - st.vec_t, half_life_s)))
            else:
                earlier.append((i, x, w, st.vec_t, _decay(st.vec_t - t, half_life_s)))
        for i, x, w, t in fresh:
            states[i].vec, states[i].vec_t = (w * x.astype(np.float32)).astype(np.float32), t
        if later:
            vecs = np.stack([states[i].vec for i, *_ in later])  # type: ignore[misc]
            xs = np.stack([x for _, x, *_ in later]).astype(np.float32, copy=False)
            d = np.array([dd for *_, dd in later], dtype=np.float64).astype(np.float32)
            ws = np.array([w for _, _, w, *_ in later], dtype=np.float64).astype(np.float32)
            out = vecs * d[:, None] + ws[:, None] * xs
            for j, (i, _x, _w, t, _d) in enumerate(later):
                states[i].vec, states[i].vec_t = out[j], t
        if earlier:
            vecs = np.stack([states[i].vec for i, *_ in earlier])  # type: ignore[misc]
            xs = np.stack([x for _, x, *_ in earlier]).astype(np.float32, copy=False)
            c = np.array([w * dd for _, _, w, _, dd in earlier], dtype=np.float64)
            out = vecs + c.astype(np.float32)[:, None] * xs
            for j, (i, *_rest) in enumerate(earlier):
                states[i].vec = out[j]


def _session(state: UserState, event: Any, t: int, cfg: FoldConfig) -> None:
    """Count the event in the listener's session.

    A late event (dated before the session's last one) that in time order would
    have joined the session (no more than the session gap before its start) still
    counts in it, so an event dated a little ahead (a client clock that runs fast,
    within the allowed skew) cannot stop the events after it from counting. It
    never moves the session's last time back and never ends a skip streak that
    newer events built; a late event from an earlier session changes nothing.
    """
    s = state.session
    gap_ms = cfg.session_gap_s * 1000
    late = bool(s) and t < s["last"]
    if late:
        if t < s["start"] - gap_ms:
            return  # it belongs to a session that is over
        s["start"] = min(s["start"], t)
    else:
        if not s or t - s["last"] > gap_ms:
            s.clear()
            s.update(start=t, last=t, plays=0, skips=0, streak=0)
        s["last"] = t
    if event.type == "skip":
        s["skips"] += 1
        s["streak"] += 1
    elif event.type == "play":
        s["plays"] += 1
        if not late and event.completion_ratio >= cfg.full_play:
            s["streak"] = 0
    elif event.type == "like" and not late:
        s["streak"] = 0


def _feedback(state: UserState, event: Any, t: int) -> None:
    kind = event.type
    if kind == "play" or kind == "skip":
        return
    track = event.track_id
    if kind == "dislike":
        if event.artist:  # an artist block stands on its own (latest time kept)
            state.neg_artist_of[track] = max(t, state.neg_artist_of.get(track, t))
        if t >= state.liked.get(track, -1):
            state.liked.pop(track, None)
            state.neg_tracks[track] = t
    elif event.type == "like":
        if t >= state.neg_tracks.get(track, -1):
            state.neg_tracks.pop(track, None)
            state.liked[track] = t
    elif event.type == "unlike" and t >= state.liked.get(track, -1):
        state.liked.pop(track, None)
    _trim(state.neg_tracks, NEG_LIMIT)
    _trim(state.neg_artist_of, NEG_LIMIT)
    _trim(state.liked, LIKED_LIMIT)


def refold(
    state: UserState, vectors: dict[str, np.ndarray], model: str, cfg: FoldConfig
) -> UserState:
    """Rebuild the taste vector in a new item space from the weighted history."""
    vec: np.ndarray | None = None
    vec_t = 0
    for track, t, _kind, w in state.hist:
        x = vectors.get(track)
        if x is not None:
            vec, vec_t = fold_vector(vec, vec_t, x, float(w), int(t), cfg.half_life_s)
    state.vec, state.vec_t, state.model = vec, vec_t, model if vec is not None else ""
    return state


def fold_extra(
    state: UserState, vectors: dict[str, np.ndarray], cfg: FoldConfig
) -> np.ndarray | None:
    """The taste vector plus the pull of history tracks the item space lacks.

    ``vectors`` holds catalog-projected vectors of such tracks (same space).
    """
    vec, vec_t = state.vec, state.vec_t
    for track, t, _kind, w in state.hist:
        x = vectors.get(track)
        if x is not None:
            vec, vec_t = fold_vector(vec, vec_t, x, float(w), int(t), cfg.half_life_s)
    return vec


@dataclass(frozen=True, slots=True)
class ArtistSignals:
    """Per-artist facts derived from a user's history and the catalog, at read time."""

    last_played: dict[str, int]
    skips: dict[str, float]
    blocked: set[str]


def artist_signals(
    state: UserState, artist_of: dict[str, str], now_ms: int, skip_half_life_s: float = 86_400.0
) -> ArtistSignals:
    """Artist recency, decayed skip counts and blocked artists, joined with the catalog."""
    last: dict[str, int] = {}
    skips: dict[str, float] = {}
    for track, t, kind, _w in state.hist:
        artist = artist_of.get(track)
        if artist is None:
            continue
        last[artist] = max(last.get(artist, 0), int(t))
        if kind == "skip":
            skips[artist] = skips.get(artist, 0.0) + _decay(now_ms - t, skip_half_life_s)
    blocked = {artist_of[t] for t in state.neg_artist_of if t in artist_of}
    return ArtistSignals(last, skips, blocked)
