"""The state-store interface that the Redis store and its in-memory twin share."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from models.ops import Read, Write


class StateStore(Protocol):
    """Reads in one round trip; writes atomically with a partition's applied offset."""

    async def read(self, reads: Sequence[Read]) -> list[Any]:
        """Run reads in one round trip; results in order (see :mod:`models.ops`)."""
        ...

    async def commit(
        self, offset_key: str, expected: int, new: int, writes: Sequence[Write]
    ) -> bool:
        """Apply ``writes`` and set ``offset_key`` to ``new`` in one atomic step, only if
        the stored offset is ``expected`` (-1: absent). Returns whether it applied."""
        ...

    async def get_int(self, key: str, default: int) -> int:
        """An integer string key, or ``default``."""
        ...

    async def set_int(self, key: str, value: int) -> None:
        """Set an integer string key."""
        ...

    async def dump(self, prefix: str) -> dict[str, Any]:
        """Every key under ``prefix`` (prefix removed) with a canonical value."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``; returns how many."""
        ...

    async def ping(self) -> bool:
        """Whether the store answers."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def digest_of(dump: dict[str, Any]) -> str:
    """A stable SHA-256 over a :meth:`StateStore.dump`."""
    body = orjson.dumps(dump, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(body).hexdigest()


def canonical(kind: str, value: Any) -> Any:
    """Canonical JSON-able form of a value of a Redis type (bytes shown as hex if binary)."""

    def text(b: Any) -> str:
        if isinstance(b, bytes):
            try:
                return b.decode("utf-8")
            except UnicodeDecodeError:
                return "0x" + b.hex()
        return str(b)

    if kind == "string":
        return text(value)
    if kind == "hash":
        return {text(k): text(v) for k, v in sorted(value.items())}
    if kind == "zset":
        return sorted([text(m), float(s)] for m, s in value)
    raise ValueError(f"unsupported type {kind}")
