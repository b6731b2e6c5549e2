"""Link status is read for the picked tracks only, and the list equals filtering first."""

from __future__ import annotations

import asyncio

import numpy as np

from api.pool import WorkPool
from api.reader import Reader
from api.recommend import Engine, rank_alive
from models import ops
from models.io.memory_store import MemoryStore
from models.keys import Keys
from models.pool import Pool
from models.rerank import Context, Filters, Ranked, rerank
from models.state import FoldConfig
from tests.poolkit import Track, pool_of

P = 3


def _tracks(rng: np.random.Generator, n: int = 60) -> list[Track]:
    return [
        Track(
            f"t{i}",
            {"collab": float(rng.random()), "content": float(rng.random())},
            ["collab"],
            artist=f"a{int(rng.integers(0, 12))}",
            vector=rng.normal(size=8).astype(np.float32),
        )
        for i in range(n)
    ]


def _rank(pool: Pool) -> list[Ranked]:
    return rerank(
        pool,
        {"collab": 0.7, "content": 0.3},
        n=10,
        filters=Filters(),
        ctx=Context(),
        lam=0.7,
        artist_gap=2,
    )


class CountingStore(MemoryStore):
    """The in-memory store, counting the link-status fields a request asks for."""

    asked = 0

    async def read(self, reads: list[ops.Read]) -> list[object]:  # type: ignore[override]
        self.asked += sum(len(r.args) for r in reads if r.cmd == "HMGET")
        return await super().read(reads)


def test_rank_alive_equals_filtering_the_whole_pool_first() -> None:
    rng = np.random.default_rng(4)
    keys = Keys("enc", 0, P)
    for trial in range(30):
        tracks = _tracks(rng)
        pool = pool_of(tracks)
        dead = {t.track_id for t in tracks if rng.random() < 0.25}
        store = CountingStore()
        for p in range(P):
            mine = {t: "dead" for t in dead}
            mine = {t: s for t, s in mine.items() if keys.track_partition(t) == p}
            if mine:
                store._write(ops.hset(keys.link_status(p), mine))
        reader = Reader(store, "enc", P, trending_bucket_s=60, trending_window_s=3600)
        engine = Engine(reader, FoldConfig(), 1.0, 0.7, 2, WorkPool(4))
        try:
            got = asyncio.run(rank_alive(engine, keys, [], pool, lambda pool=pool: _rank(pool)))
        finally:
            engine.pool.close()
        whole = pool_of(tracks)
        for i, t in enumerate(tracks):
            whole.set_link(i, "dead" if t.track_id in dead else "unknown")
        want = _rank(whole)
        assert [r.candidate.track_id for r in got] == [r.candidate.track_id for r in want], trial
        assert not {r.candidate.track_id for r in got} & dead
        assert store.asked < len(tracks)  # only picked tracks were looked up
