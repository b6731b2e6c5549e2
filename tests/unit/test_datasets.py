"""Dataset readers: real files in, valid events out."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from batch.datasets import (
    DatasetMissing,
    lastfm_events,
    movielens_events,
    read_lastfm,
    read_movielens,
)
from models.codec import decode_record, encode_event
from models.demo import generate


def test_lastfm_2k_reads_as_documented(lastfm_dir: Path) -> None:
    data = read_lastfm(lastfm_dir)
    assert (len(data.users), len(data.items), len(data.weight)) == (1_892, 17_632, 92_834)
    tracks, plays = lastfm_events(data)
    assert len(tracks) == 17_632
    first = list(itertools.islice(plays, 1_000))
    assert all(p.count >= 1 for p in first)
    for event in [*tracks[:50], *first[:50]]:
        assert decode_record(encode_event(event), max_bytes=2**20).events == [event]
    tagged = sum(1 for t in tracks if t.tags)
    assert tagged > 10_000  # most artists carry their most-used tags


def test_missing_lastfm_folder_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissing, match=r"user_artists\.dat"):
        read_lastfm(tmp_path)


def test_movielens_100k_from_the_recbole_package() -> None:
    data = read_movielens()
    assert (len(data.users), len(data.items), len(data.weight)) == (943, 1_682, 100_000)
    tracks, events = movielens_events(data)
    kinds = Counter(e.type for e in events)
    assert kinds["play"] + kinds["skip"] == 100_000
    assert kinds["like"] > 10_000
    assert all(t.title for t in tracks)


def test_demo_is_seeded_power_law_and_sparse() -> None:
    a, b = generate(seed=3, n_tracks=400, n_users=50), generate(seed=3, n_tracks=400, n_users=50)
    assert a == b
    plays = Counter(e.track_id for e in a.interactions if e.type == "play")
    top = sum(n for _, n in plays.most_common(40))
    assert top > 0.3 * sum(plays.values())  # the top 10% of tracks take a large share
    missing_desc = sum(1 for t in a.tracks if t.description is None) / len(a.tracks)
    assert 0.6 < missing_desc < 0.9
    assert generate(seed=4, n_tracks=400, n_users=50) != a
