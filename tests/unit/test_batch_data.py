"""Events become listening strength by the documented rules; datasets keep the event ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from batch.data import confidence, from_dataset, from_events
from batch.datasets import read_movielens
from models.events import Dislike, Like, NewTrack, Play, Skip, Unlike

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def at(n: int) -> dict[str, Any]:
    return {"event_id": f"e{n}", "occurred_at": T0 + timedelta(minutes=n)}


def test_events_aggregate_into_strength() -> None:
    tracks = [
        NewTrack(**at(0), track_id="t1", title="One", artist_id="a1"),
        NewTrack(**at(1), track_id="t1", title="One (remaster)", artist_id="a1"),  # newer wins
        NewTrack(**at(2), track_id="t9", title="Never played"),
    ]
    u = {"user_id": "u1"}
    events = [
        Play(**at(10), **u, track_id="t1", ms_played=200, duration_ms=200, count=3),
        Play(**at(10), **u, track_id="t1", ms_played=200, duration_ms=200, count=3),  # resend
        Play(**at(11), **u, track_id="t2", ms_played=50, duration_ms=100),  # half a play
        Like(**at(12), **u, track_id="t2"),
        Skip(**at(13), **u, track_id="t3", ms_played=1_000),  # only a skip: dropped
        Play(**at(14), **u, track_id="t4", ms_played=100, duration_ms=100),
        Dislike(**at(15), **u, track_id="t4"),  # dislike after play: dropped
        Play(**at(16), user_id="u2", track_id="t4", ms_played=100, duration_ms=100),
        Dislike(**at(17), user_id="u2", track_id="t1"),
        Like(**at(18), user_id="u2", track_id="t1"),  # like after dislike: kept
        Unlike(**at(19), user_id="u2", track_id="t2"),
    ]
    data = from_events("test", tracks, events)
    got = {
        (data.users[r], data.items[c]): float(data.counts[r, c])
        for r, c in zip(*data.counts.nonzero(), strict=True)
    }
    assert got == {("u1", "t1"): 3.0, ("u1", "t2"): 1.5, ("u2", "t4"): 1.0, ("u2", "t1"): 1.0}
    assert data.info["duplicate_events"] == 1
    assert data.catalog["t1"]["title"] == "One (remaster)"
    assert "t9" in data.catalog
    assert "t9" not in data.items
    assert data.item_artists()[data.items.index("t1")] == "a1"
    assert data.popularity()[data.items.index("t1")] == 2.0
    assert data.info["time_range_ms"][0] == int((T0 + timedelta(minutes=10)).timestamp() * 1000)


def test_movielens_ids_match_its_events() -> None:
    data = from_dataset(read_movielens())
    assert data.users[0].startswith("ml:u")
    assert data.items[0].startswith("ml:")
    assert data.counts.nnz == 100_000
    assert data.times is not None
    assert data.times.nnz == 100_000
    assert set(np.unique(data.counts.data)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert data.catalog[data.items[0]]["title"]


def test_unknown_weighting_is_refused() -> None:
    with pytest.raises(ValueError, match="cubic"):
        confidence(sp.csr_matrix(np.eye(2, dtype=np.float32)), "cubic")
