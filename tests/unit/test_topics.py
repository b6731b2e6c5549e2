"""Topic routing and the partitioner."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from models.keys import Keys
from models.topics import (
    INTERACTIONS,
    LINK_HEALTH,
    TRACKS,
    all_topics,
    dlq_topic,
    key_of,
    partition_for,
    topic_of,
)
from tests.samples import every_event_type


@given(st.text(min_size=1, max_size=60), st.integers(min_value=1, max_value=64))
def test_partitioner_matches_kafkas_default(key: str, partitions: int) -> None:
    raw = key.encode()
    expected = DefaultPartitioner()(raw, list(range(partitions)), list(range(partitions)))
    assert partition_for(key, partitions) == expected


def test_interactions_keyed_by_user_track_events_by_track() -> None:
    routes = {e.type: (topic_of(e), key_of(e)) for e in every_event_type(5)}
    for kind in ("play", "skip", "like", "unlike", "dislike"):
        assert routes[kind] == (INTERACTIONS, "u5")
    assert routes["track"] == (TRACKS, "t5")
    assert routes["playback_failure"] == (LINK_HEALTH, "t5")
    assert routes["link_check"] == (LINK_HEALTH, "t5")


def test_every_input_topic_has_a_dead_letter_topic() -> None:
    topics = all_topics()
    for t in (INTERACTIONS, TRACKS, LINK_HEALTH):
        assert t in topics
        assert dlq_topic(t) in topics


def test_keys_of_one_partition_share_one_hash_tag() -> None:
    keys = Keys("enc", 0, 6)
    user = "listener-42"
    p = keys.user_partition(user)
    tag = f"{{i{p}}}"
    for key in (
        keys.user(user),
        keys.offset(INTERACTIONS, p),
        keys.dedup(INTERACTIONS, p),
        keys.trending(p, 123),
        keys.bandit(p),
    ):
        assert tag in key
    assert keys.user(user).startswith("enc:g0:")
    assert keys.with_generation(3).user(user).startswith("enc:g3:")
