"""In-memory twin of the Redis state store, for unit tests and offline tools.

It passes the same contract suite as :class:`models.io.redis_store.RedisStore`.
Time for key expiry comes from the ``clock`` argument (epoch milliseconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from models.io.store import canonical
from models.ops import Read, Write


def _b(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return _fmt(value)
    return str(value).encode()


def _fmt(x: float) -> bytes:
    """Redis's way of printing an incremented float (``%.17g``, no trailing zeros)."""
    text = f"{x:.17g}"
    if "e" not in text and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.encode()


class MemoryStore:
    """:class:`models.io.store.StateStore` in a dict."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self.data: dict[str, Any] = {}
        self.expiry: dict[str, int] = {}
        self.clock = clock or (lambda: int(time.time() * 1000))

    def _live(self, key: str) -> Any:
        at = self.expiry.get(key)
        if at is not None and at <= self.clock():
            self.data.pop(key, None)
            self.expiry.pop(key, None)
        return self.data.get(key)

    def _hash(self, key: str) -> dict[bytes, bytes]:
        value = self._live(key)
        if value is None:
            value = self.data[key] = {}
        return value  # type: ignore[no-any-return]

    def _zset(self, key: str) -> dict[bytes, float]:
        value = self._live(key)
        if value is None:
            value = self.data[key] = {}
        return value  # type: ignore[no-any-return]

    async def read(self, reads: Sequence[Read]) -> list[Any]:
        return [self._read(r) for r in reads]

    def _read(self, r: Read) -> Any:
        value = self._live(r.key)
        if r.cmd == "GET":
            return value
        if r.cmd == "MGET":
            return [value, *(self._live(str(k)) for k in r.args)]
        if r.cmd == "HGETALL":
            return dict(value or {})
        if r.cmd == "HMGET":
            return [(value or {}).get(_b(f)) for f in r.args]
        if r.cmd == "ZMSCORE":
            return [(value or {}).get(_b(m)) for m in r.args]
        if r.cmd == "ZCARD":
            return len(value or {})
        if r.cmd == "ZREVRANGE":
            ranked = sorted((value or {}).items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
            start, stop = int(r.args[0]), int(r.args[1])
            stop = len(ranked) if stop == -1 else stop + 1
            return ranked[start:stop]
        raise ValueError(r.cmd)

    async def commit(
        self, offset_key: str, expected: int, new: int, writes: Sequence[Write]
    ) -> bool:
        current = self._live(offset_key)
        if (int(current) if current is not None else -1) != expected:
            return False
        for w in writes:
            self._write(w)
        self.data[offset_key] = str(new).encode()
        return True

    def _write(self, w: Write) -> None:
        a = w.args
        if w.cmd == "SET":
            self.data[w.key] = _b(a[0])
            self.expiry.pop(w.key, None)
        elif w.cmd == "HSET":
            h = self._hash(w.key)
            for i in range(0, len(a), 2):
                h[_b(a[i])] = _b(a[i + 1])
        elif w.cmd == "DEL":
            self.data.pop(w.key, None)
            self.expiry.pop(w.key, None)
        elif w.cmd == "ZADD":
            z = self._zset(w.key)
            for i in range(0, len(a), 2):
                z[_b(a[i + 1])] = float(a[i])
        elif w.cmd == "ZINCRBY":
            z = self._zset(w.key)
            z[_b(a[1])] = z.get(_b(a[1]), 0.0) + float(a[0])
        elif w.cmd == "ZREMRANGEBYRANK":
            z = self._zset(w.key)
            ranked = sorted(z.items(), key=lambda kv: (kv[1], kv[0]))
            start, stop = int(a[0]), int(a[1])
            n = len(ranked)
            start, stop = (start + n if start < 0 else start), (stop + n if stop < 0 else stop)
            for member, _ in ranked[max(start, 0) : stop + 1]:
                del z[member]
        elif w.cmd == "INCRBY":
            old = self._live(w.key)
            self.data[w.key] = str(int(old or b"0") + int(a[0])).encode()
        elif w.cmd == "HINCRBY":
            h = self._hash(w.key)
            h[_b(a[0])] = str(int(h.get(_b(a[0]), b"0")) + int(a[1])).encode()
        elif w.cmd == "HINCRBYFLOAT":
            h = self._hash(w.key)
            h[_b(a[0])] = _fmt(float(h.get(_b(a[0]), b"0")) + float(a[1]))
        elif w.cmd == "PEXPIREAT" and self._live(w.key) is not None:
            self.expiry[w.key] = int(a[0])
            self._live(w.key)
        if isinstance(self.data.get(w.key), dict) and not self.data[w.key]:
            del self.data[w.key]  # Redis removes empty hashes and sorted sets

    async def get_int(self, key: str, default: int) -> int:
        value = self._live(key)
        return default if value is None else int(value)

    async def set_int(self, key: str, value: int) -> None:
        self.data[key] = str(value).encode()

    async def dump(self, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in sorted(self.data):
            value = self._live(key)
            if value is None or not key.startswith(prefix):
                continue
            if isinstance(value, bytes):
                out[key[len(prefix) :]] = canonical("string", value)
            elif all(isinstance(v, float) for v in value.values()):
                out[key[len(prefix) :]] = canonical("zset", list(value.items()))
            else:
                out[key[len(prefix) :]] = canonical("hash", value)
        return out

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [k for k in self.data if k.startswith(prefix)]
        for k in doomed:
            self.data.pop(k, None)
            self.expiry.pop(k, None)
        return len(doomed)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
