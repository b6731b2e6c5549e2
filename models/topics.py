"""Topic names, partition keys and the partitioner, defined once.

Interactions are keyed by user, so one user's events are totally ordered on one
partition; track events (catalog and link health) are keyed by track. Producers
set the partition explicitly with :func:`partition_for` (Kafka's murmur2
partitioner, so Java clients keyed the same way agree), and readers use the same
function to find the Redis hash tag that holds a user's or a track's state.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

INTERACTIONS: Final = "interactions"
"""Plays, skips, likes, unlikes and dislikes, keyed by ``user_id``."""
TRACKS: Final = "tracks"
"""New-track (catalog) events, keyed by ``track_id``."""
LINK_HEALTH: Final = "link-health"
"""Playback failures and link-check results, keyed by ``track_id``."""
RECOMMENDATIONS: Final = "recommendations"
"""Served personal lists (``models.events.ServedList``), keyed by ``user_id`` like the
interactions, so a user's lists and feedback share partition numbers. Written by the
API, read by ``encore ope``; no stream agent consumes it, so it has no dead-letter
topic (the reader counts and skips what does not decode)."""

SOURCE_TOPICS: Final = (TRACKS, LINK_HEALTH, INTERACTIONS)
"""Every input topic, in the order a full replay applies them (catalog first)."""
DLQ_SUFFIX: Final = ".dlq"

TOPIC_OF_TYPE: Final = {
    "play": INTERACTIONS,
    "skip": INTERACTIONS,
    "like": INTERACTIONS,
    "unlike": INTERACTIONS,
    "dislike": INTERACTIONS,
    "track": TRACKS,
    "playback_failure": LINK_HEALTH,
    "link_check": LINK_HEALTH,
    "served": RECOMMENDATIONS,
}

TAG_PREFIX: Final = {INTERACTIONS: "i", TRACKS: "t", LINK_HEALTH: "l"}
"""Short name of each topic inside Redis hash tags, e.g. ``{i3}``."""


def dlq_topic(topic: str) -> str:
    """Name of a topic's dead-letter topic."""
    return topic + DLQ_SUFFIX


def all_topics() -> list[str]:
    """Every topic Encore creates: the inputs, the served lists, the dead-letter topics."""
    return [*SOURCE_TOPICS, RECOMMENDATIONS, *(dlq_topic(t) for t in SOURCE_TOPICS)]


def topic_of(event: Any) -> str:
    """The topic an event belongs on."""
    return TOPIC_OF_TYPE[event.type]


def key_of(event: Any) -> str:
    """The partition key of an event: the user for interactions and served lists, else the track."""
    if TOPIC_OF_TYPE[event.type] in (INTERACTIONS, RECOMMENDATIONS):
        return str(event.user_id)
    return str(event.track_id)


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (as in the Java client's ``Utils.murmur2``)."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    n4 = length // 4
    for i in range(n4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    base = n4 * 4
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


@lru_cache(maxsize=262_144)
@lru_cache(maxsize=1 << 16)
def partition_for(key: str, partitions: int) -> int:
    """Partition of a key: ``toPositive(murmur2(key)) % partitions``, as Kafka does
    (remembered for the most recent keys: the workers check every event's)."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def hash_tag(topic: str, partition: int) -> str:
    """Redis Cluster hash tag shared by every key one partition's writes touch."""
    return "{" + TAG_PREFIX[topic] + str(partition) + "}"
