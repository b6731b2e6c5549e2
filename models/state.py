"""User state and the pure fold of one interaction into it.

The real-time taste vector is a signed, time-decayed sum of item vectors::

    S(t) = sum_i  w_i * x_i * 2 ** (-(t - t_i) / half_life)

kept as ``(S, t_ref)``. Why this and not an ALS fold-in over the history:

* it is O(dim) per event, where a fold-in solves a dim x dim system per event;
* it handles negative feedback (skips, dislikes push away), which ALS's
  positive-only confidence model cannot express;
* it is commutative: a late event folds in with its own decay without moving
  the clock, so out-of-order delivery and replays give the same vector.

Its ranking quality against batch ALS user factors is measured by
``encore eval`` (row "fold-in"). When the item space changes (a new model), the
vector is rebuilt from the weighted history with :func:`refold`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from models.events import Dislike, Like, Play, Skip, Unlike

NEG_LIMIT = 500
LIKED_LIMIT = 500


@dataclass(frozen=True, slots=True)
class FoldConfig:
    """Parameters of the fold (from ``StreamSettings``)."""

    half_life_s: float = 7 * 86_400.0
    session_gap_s: float = 30 * 60.0
    full_play: float = 0.8
    history_len: int = 200
    artist_recency_len: int = 50


@dataclass(frozen=True, slots=True)
class ItemInfo:
    """What the fold needs to know of a track: its vector (if any) and artist."""

    vector: np.ndarray | None = None
    artist_id: str | None = None


@dataclass
class UserState:
    """Everything Encore keeps about one listener."""

    vec: np.ndarray | None = None
    vec_t: int = 0
    model: str = ""
    hist: list[list[Any]] = field(default_factory=list)  # [track, ms, type, weight, artist]
    artists: dict[str, int] = field(default_factory=dict)
    artist_skips: dict[str, list[float]] = field(default_factory=dict)  # artist -> [n, ms]
    session: dict[str, int] = field(default_factory=dict)
    neg_tracks: dict[str, int] = field(default_factory=dict)
    neg_artists: dict[str, int] = field(default_factory=dict)
    liked: dict[str, int] = field(default_factory=dict)
    n: int = 0
    last_ms: int = 0

    def to_fields(self) -> dict[str, bytes]:
        """Redis hash fields."""
        doc = {
            "vt": self.vec_t,
            "m": self.model,
            "h": self.hist,
            "a": self.artists,
            "as": self.artist_skips,
            "s": self.session,
            "nt": self.neg_tracks,
            "na": self.neg_artists,
            "l": self.liked,
            "n": self.n,
            "t": self.last_ms,
        }
        out = {"doc": orjson.dumps(doc)}
        out["vec"] = b"" if self.vec is None else self.vec.astype("<f4").tobytes()
        return out

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> UserState:
        """Inverse of :meth:`to_fields`; an empty hash is a new user."""
        if not fields:
            return cls()
        doc = orjson.loads(fields[b"doc"])
        raw = fields.get(b"vec", b"")
        return cls(
            vec=np.frombuffer(raw, dtype="<f4").copy() if raw else None,
            vec_t=doc["vt"],
            model=doc["m"],
            hist=doc["h"],
            artists=doc["a"],
            artist_skips=doc["as"],
            session=doc["s"],
            neg_tracks=doc["nt"],
            neg_artists=doc["na"],
            liked=doc["l"],
            n=doc["n"],
            last_ms=doc["t"],
        )


def event_weight(event: Any, cfg: FoldConfig) -> float:
    """Signed pull of an interaction on the taste vector.

    Full play: 1 + ln(count); partial play with completion c: c - 0.5; skip:
    -0.3 to -0.8 (earlier skips push harder); like +1.5; unlike -1.5 (undoes a
    like); dislike -2.
    """
    if isinstance(event, Play):
        c = event.completion_ratio
        return 1.0 + math.log(event.count) if c >= cfg.full_play else c - 0.5
    if isinstance(event, Skip):
        return -0.3 - 0.5 * (1.0 - min(event.ms_played / 30_000.0, 1.0))
    if isinstance(event, Like):
        return 1.5
    if isinstance(event, Unlike):
        return -1.5
    if isinstance(event, Dislike):
        return -2.0
    raise TypeError(f"not an interaction: {type(event).__name__}")


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
    counting is commutative (vector, history, negatives by their own times) but
    never move the session or recency clocks backwards.
    """
    t = event.occurred_ms
    w = event_weight(event, cfg)
    artist = item.artist_id
    if item.vector is not None and model:
        if state.model != model:
            state.vec, state.vec_t = None, 0
        state.vec, state.vec_t = fold_vector(
            state.vec, state.vec_t, item.vector, w, t, cfg.half_life_s
        )
        state.model = model

    entry = [event.track_id, t, event.type, round(w, 4), artist]
    hist = state.hist
    pos = len(hist)
    while pos > 0 and (hist[pos - 1][1], hist[pos - 1][0]) > (t, event.track_id):
        pos -= 1
    hist.insert(pos, entry)
    del hist[: max(0, len(hist) - cfg.history_len)]

    if artist:
        if t >= state.artists.get(artist, -1):
            state.artists[artist] = t
        _trim(state.artists, cfg.artist_recency_len)
        if isinstance(event, Skip):
            n, at = state.artist_skips.get(artist, [0.0, t])
            if t >= at:
                state.artist_skips[artist] = [n * _decay(t - at, 86_400.0) + 1.0, t]
            else:
                state.artist_skips[artist] = [n + _decay(at - t, 86_400.0), at]
            _trim(state.artist_skips, cfg.artist_recency_len, lambda v: v[1])

    _session(state, event, t, cfg)
    _feedback(state, event, t, artist)
    state.n += 1
    state.last_ms = max(state.last_ms, t)
    return state


def _session(state: UserState, event: Any, t: int, cfg: FoldConfig) -> None:
    s = state.session
    if s and t < s["last"]:
        return  # late: the session clock never runs backwards
    if not s or t - s["last"] > cfg.session_gap_s * 1000:
        s.clear()
        s.update(start=t, last=t, plays=0, skips=0, streak=0)
    s["last"] = t
    if isinstance(event, Skip):
        s["skips"] += 1
        s["streak"] += 1
    elif isinstance(event, Play):
        s["plays"] += 1
        if event.completion_ratio >= cfg.full_play:
            s["streak"] = 0
    elif isinstance(event, Like):
        s["streak"] = 0


def _feedback(state: UserState, event: Any, t: int, artist: str | None) -> None:
    track = event.track_id
    if isinstance(event, Dislike):
        if event.artist and artist:  # an artist block stands on its own (latest time kept)
            state.neg_artists[artist] = max(t, state.neg_artists.get(artist, t))
        if t >= state.liked.get(track, -1):
            state.liked.pop(track, None)
            state.neg_tracks[track] = t
    elif isinstance(event, Like):
        if t >= state.neg_tracks.get(track, -1):
            state.neg_tracks.pop(track, None)
            state.liked[track] = t
    elif isinstance(event, Unlike) and t >= state.liked.get(track, -1):
        state.liked.pop(track, None)
    _trim(state.neg_tracks, NEG_LIMIT)
    _trim(state.neg_artists, NEG_LIMIT)
    _trim(state.liked, LIKED_LIMIT)


def refold(
    state: UserState, vectors: dict[str, np.ndarray], model: str, cfg: FoldConfig
) -> UserState:
    """Rebuild the taste vector in a new item space from the weighted history."""
    vec: np.ndarray | None = None
    vec_t = 0
    for track, t, _kind, w, _artist in state.hist:
        x = vectors.get(track)
        if x is not None:
            vec, vec_t = fold_vector(vec, vec_t, x, float(w), int(t), cfg.half_life_s)
    state.vec, state.vec_t, state.model = vec, vec_t, model if vec is not None else ""
    return state
