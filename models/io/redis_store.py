"""The Redis state store: pipelined reads, one Lua call per atomic partition write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from models.io.store import canonical
from models.ops import Read, Write

# KEYS[1]: offset key; KEYS[2..]: keys the writes touch (all share one hash tag).
# ARGV[1]: expected offset ("-1": absent); ARGV[2]: new offset; ARGV[3]: the writes as
# one MessagePack array of [command, key index, arguments...] (one argument instead of
# thousands keeps client-side packing cheap; cmsgpack is built into Redis's Lua).
_COMMIT = """
local cur = redis.call('GET', KEYS[1])
if not cur then cur = '-1' end
if cur ~= ARGV[1] then return 0 end
local writes = cmsgpack.unpack(ARGV[3])
for i = 1, #writes do
  local w = writes[i]
  redis.call(w[1], KEYS[w[2]], unpack(w, 3))
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

_MAX_ARGS = 4_000  # Lua's unpack() limit is about 8,000 values


def _split(write: Write) -> list[Write]:
    """Split a long HSET/ZADD into several (same effect) so Lua's unpack copes."""
    if len(write.args) <= _MAX_ARGS or write.cmd not in {"HSET", "ZADD"}:
        return [write]
    return [
        Write(write.cmd, write.key, write.args[i : i + _MAX_ARGS])
        for i in range(0, len(write.args), _MAX_ARGS)
    ]


def _arg(value: Any) -> bytes | str:
    """Numbers as their shortest exact text (as redis-py sends them), bytes as they are."""
    if isinstance(value, bytes | str):
        return value
    return repr(value) if isinstance(value, float) else str(value)


def connect(
    url: str, *, cluster: bool = False, timeout_s: float = 0.5, max_connections: int = 64
) -> Any:
    """An asyncio Redis (or Redis Cluster) client returning bytes."""
    if cluster:
        return RedisCluster.from_url(url, socket_timeout=timeout_s, decode_responses=False)
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        max_connections=max_connections,
        decode_responses=False,
        health_check_interval=30,
    )


class RedisStore:
    """:class:`models.io.store.StateStore` on a real Redis."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._commit = client.register_script(_COMMIT)

    async def read(self, reads: Sequence[Read]) -> list[Any]:
        if not reads:
            return []
        pipe = self.client.pipeline(transaction=False)
        for r in reads:
            if r.cmd == "ZREVRANGE":
                pipe.zrevrange(r.key, r.args[0], r.args[1], withscores=True)
            elif r.cmd == "HMGET":
                pipe.hmget(r.key, list(r.args))
            elif r.cmd == "ZMSCORE":
                pipe.zmscore(r.key, list(r.args))
            else:
                pipe.execute_command(r.cmd, r.key, *r.args)
        results = await pipe.execute()
        out: list[Any] = []
        for r, res in zip(reads, results, strict=True):
            if r.cmd == "HGETALL" and isinstance(res, list):  # RESP2 without callbacks
                res = dict(zip(res[::2], res[1::2], strict=True))
            out.append(res)
        return out

    async def commit(
        self, offset_key: str, expected: int, new: int, writes: Sequence[Write]
    ) -> bool:
        keys: list[str] = [offset_key]
        index: dict[str, int] = {offset_key: 1}
        packed: list[list[Any]] = []
        for w in writes:
            for part in _split(w):
                if part.key not in index:
                    keys.append(part.key)
                    index[part.key] = len(keys)
                packed.append([part.cmd, index[part.key], *map(_arg, part.args)])
        blob = msgpack.packb(packed, use_bin_type=False)
        return bool(await self._commit(keys=keys, args=[str(expected), str(new), blob]))

    async def get_int(self, key: str, default: int) -> int:
        value = await self.client.get(key)
        return default if value is None else int(value)

    async def set_int(self, key: str, value: int) -> None:
        await self.client.set(key, str(value))

    async def dump(self, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async for raw_key in self.client.scan_iter(match=prefix + "*", count=1_000):
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            kind = (await self.client.type(key)).decode()
            if kind == "string":
                value: Any = await self.client.get(key)
            elif kind == "hash":
                value = await self.client.hgetall(key)
            elif kind == "zset":
                value = await self.client.zrange(key, 0, -1, withscores=True)
            elif kind == "none":  # expired between SCAN and read
                continue
            else:
                raise ValueError(f"unexpected key type {kind} at {key}")
            out[key[len(prefix) :]] = canonical(kind, value)
        return out

    async def delete_prefix(self, prefix: str) -> int:
        n = 0
        batch: list[Any] = []
        async for key in self.client.scan_iter(match=prefix + "*", count=1_000):
            batch.append(key)
            if len(batch) >= 500:
                n += await self.client.unlink(*batch)
                batch = []
        if batch:
            n += await self.client.unlink(*batch)
        return n

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    async def close(self) -> None:
        await self.client.aclose()
