"""State reads and writes as values.

Pure update functions return :class:`Write` values; a state store executes a
partition's writes in one atomic step together with the partition's applied
offset (compare-and-set), and executes :class:`Read` values in one round trip.
Only the small command set below exists, so the Redis store and its in-memory
twin can implement exactly the same semantics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

Arg = str | bytes | int | float

WRITE_COMMANDS: Final = frozenset(
    {"SET", "HSET", "DEL", "ZADD", "ZINCRBY", "ZREMRANGEBYRANK", "HINCRBY", "HINCRBYFLOAT"}
    | {"INCRBY", "PEXPIREAT"}
)
READ_COMMANDS: Final = frozenset(
    {"GET", "MGET", "HGETALL", "HMGET", "ZMSCORE", "ZREVRANGE", "ZCARD"}
)


@dataclass(frozen=True, slots=True)
class Write:
    """One write command on one key."""

    cmd: str
    key: str
    args: tuple[Arg, ...] = ()

    def __post_init__(self) -> None:
        if self.cmd not in WRITE_COMMANDS:
            raise ValueError(f"unsupported write command {self.cmd!r}")


@dataclass(frozen=True, slots=True)
class Read:
    """One read command on one key."""

    cmd: str
    key: str
    args: tuple[Arg, ...] = ()

    def __post_init__(self) -> None:
        if self.cmd not in READ_COMMANDS:
            raise ValueError(f"unsupported read command {self.cmd!r}")


def set_(key: str, value: bytes) -> Write:
    """Set a string."""
    return Write("SET", key, (value,))


def hset(key: str, mapping: Mapping[str, Arg]) -> Write:
    """Set hash fields."""
    args: list[Arg] = []
    for field, value in mapping.items():
        args += [field, value]
    return Write("HSET", key, tuple(args))


def delete(key: str) -> Write:
    """Delete a key."""
    return Write("DEL", key)


def zadd(key: str, scores: Mapping[str, float]) -> Write:
    """Set sorted-set members' scores."""
    args: list[Arg] = []
    for member, score in scores.items():
        args += [score, member]
    return Write("ZADD", key, tuple(args))


def zincrby(key: str, member: str, amount: float) -> Write:
    """Add to a sorted-set member's score."""
    return Write("ZINCRBY", key, (amount, member))


def ztrim_keep_top(key: str, keep: int) -> Write:
    """Keep only the ``keep`` highest-scored members."""
    return Write("ZREMRANGEBYRANK", key, (0, -keep - 1))


def hincrby(key: str, field: str, amount: int) -> Write:
    """Add an integer to a hash field."""
    return Write("HINCRBY", key, (field, amount))


def incrby(key: str, amount: int) -> Write:
    """Add an integer to a string counter."""
    return Write("INCRBY", key, (amount,))


def hincrbyfloat(key: str, field: str, amount: float) -> Write:
    """Add a float to a hash field."""
    return Write("HINCRBYFLOAT", key, (field, amount))


def pexpireat(key: str, at_ms: int) -> Write:
    """Expire a key at an epoch-millisecond time."""
    return Write("PEXPIREAT", key, (at_ms,))


def get(key: str) -> Read:
    """Read a string."""
    return Read("GET", key)


def mget(key: str, *more: str) -> Read:
    """Read several strings (``None`` for absent ones); all keys must share a hash tag."""
    return Read("MGET", key, more)


def hgetall(key: str) -> Read:
    """Read a whole hash (``{}`` when absent)."""
    return Read("HGETALL", key)


def hmget(key: str, *fields: str) -> Read:
    """Read some hash fields (``None`` for absent ones)."""
    return Read("HMGET", key, fields)


def zmscore(key: str, *members: str) -> Read:
    """Scores of members (``None`` for absent ones)."""
    return Read("ZMSCORE", key, members)


def zrevrange(key: str, start: int, stop: int) -> Read:
    """Members with scores, highest first: ``[(member, score), ...]``."""
    return Read("ZREVRANGE", key, (start, stop))


def zcard(key: str) -> Read:
    """Number of members of a sorted set."""
    return Read("ZCARD", key)
