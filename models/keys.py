"""The Redis key layout, in one place.

Every key lives under ``<prefix>:g<generation>:``; a replay builds a new
generation beside the live one and cutover flips one pointer key. Every key that
one partition's atomic write touches carries that partition's hash tag (see
:func:`models.topics.hash_tag`), so the layout works on Redis Cluster; readers
compute the tag of a user or track with the same partitioner producers use.

=========================  ======  =====================================================
key                        type    holds
=========================  ======  =====================================================
``gen``                    string  active generation (no tag; read by everyone)
``ope``                    string  latest ``encore ope`` result, JSON (no tag, no generation)
``lag``                    hash    consumer lag per ``topic:partition`` (no tag, no generation)
``off:{tag}``              string  last applied offset of the partition
``dedup:{tag}``            zset    recent event ids (score: arrival sequence)
``dlq:{tag}``              hash    dead-lettered count per reason
``us:{tag}:<user>``        string  user state: taste vector, history, session, negatives
                                  (compact binary, :mod:`models.records`)
``trend:{tag}:<bucket>``   zset    plays per track in one time bucket (expires)
``bandit:{tag}``           hash    ``<arm>:a`` / ``<arm>:b`` Beta posterior increments
``t:{tag}:<track>``        hash    track metadata and content vectors
``fresh:{tag}``            zset    track ids by first-seen time
``lh:{tag}:<track>``       hash    link health state machine
=========================  ======  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from models.topics import INTERACTIONS, LINK_HEALTH, TRACKS, hash_tag, partition_for


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names for one generation of state."""

    prefix: str
    generation: int
    partitions: int

    @property
    def base(self) -> str:
        """Prefix shared by every key of this generation."""
        return f"{self.prefix}:g{self.generation}:"

    def with_generation(self, generation: int) -> Keys:
        """The same layout for another generation."""
        return Keys(self.prefix, generation, self.partitions)

    # -- per partition -------------------------------------------------------
    def offset(self, topic: str, partition: int) -> str:
        """Applied offset of a partition."""
        return f"{self.base}off:{hash_tag(topic, partition)}"

    def dedup(self, topic: str, partition: int) -> str:
        """Dedup window of a partition."""
        return f"{self.base}dedup:{hash_tag(topic, partition)}"

    def dlq_counts(self, topic: str, partition: int) -> str:
        """Dead-letter counts of a partition, by reason."""
        return f"{self.base}dlq:{hash_tag(topic, partition)}"

    def trending(self, partition: int, bucket: int) -> str:
        """Play counts of one interactions partition in one time bucket."""
        return f"{self.base}trend:{hash_tag(INTERACTIONS, partition)}:{bucket}"

    def trending_plays(self, partition: int, bucket: int) -> str:
        """How many plays :meth:`trending` of the same bucket has counted (a string
        counter written with it, so readers re-read only the buckets that changed)."""
        return f"{self.base}trendn:{hash_tag(INTERACTIONS, partition)}:{bucket}"

    def bandit(self, partition: int) -> str:
        """Bandit reward sums of one interactions partition."""
        return f"{self.base}bandit:{hash_tag(INTERACTIONS, partition)}"

    def fresh(self, partition: int) -> str:
        """Catalog arrivals of one tracks partition."""
        return f"{self.base}fresh:{hash_tag(TRACKS, partition)}"

    # -- per entity ------------------------------------------------------------
    def user_partition(self, user_id: str) -> int:
        """Interactions partition (and so hash tag) of a user."""
        return partition_for(user_id, self.partitions)

    def track_partition(self, track_id: str) -> int:
        """Tracks / link-health partition of a track."""
        return partition_for(track_id, self.partitions)

    def user(self, user_id: str) -> str:
        """State hash of a user."""
        return f"{self.base}us:{hash_tag(INTERACTIONS, self.user_partition(user_id))}:{user_id}"

    def track(self, track_id: str) -> str:
        """Metadata hash of a track."""
        return f"{self.base}t:{hash_tag(TRACKS, self.track_partition(track_id))}:{track_id}"

    def link(self, track_id: str) -> str:
        """Link health hash of a track."""
        return f"{self.base}lh:{hash_tag(LINK_HEALTH, self.track_partition(track_id))}:{track_id}"

    def link_status(self, partition: int) -> str:
        """Track -> link status of one link-health partition (one read per partition)."""
        return f"{self.base}lhs:{hash_tag(LINK_HEALTH, partition)}"


def generation_key(prefix: str) -> str:
    """The pointer to the active generation."""
    return f"{prefix}:gen"


def lag_key(prefix: str) -> str:
    """Consumer lag per ``topic:partition`` as the workers last reported it (no tag, no
    generation: lag is about the topics, not a state generation)."""
    return f"{prefix}:lag"


def ope_key(prefix: str) -> str:
    """The latest off-policy evaluation result (derived from the topics, so a replay keeps it)."""
    return f"{prefix}:ope"
