"""The bounded worker pool: refuses past its bound at once, frees slots as jobs end."""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.pool import Overloaded, WorkPool


def test_pool_refuses_past_its_bound_and_frees_slots() -> None:
    async def scenario() -> None:
        pool = WorkPool(bound=2, threads=1)
        gate = threading.Event()
        running = asyncio.ensure_future(pool.run(gate.wait, 30))
        waiting = asyncio.ensure_future(pool.run(lambda: "queued"))
        await asyncio.sleep(0.05)
        assert pool.full()
        with pytest.raises(Overloaded):
            await pool.run(lambda: "refused")
        gate.set()
        assert await running is True
        assert await waiting == "queued"
        await asyncio.sleep(0.05)  # slots are freed by the finished jobs
        assert not pool.full()
        assert await pool.run(lambda: 7) == 7
        pool.close()

    asyncio.run(scenario())


def test_a_job_whose_request_goes_away_frees_its_slot() -> None:
    async def scenario() -> None:
        pool = WorkPool(bound=2, threads=1)
        gate = threading.Event()
        running = asyncio.ensure_future(pool.run(gate.wait, 30))
        waiting = asyncio.ensure_future(pool.run(lambda: "never"))
        await asyncio.sleep(0.05)
        waiting.cancel()  # the client disconnected before the job started
        await asyncio.sleep(0.05)
        other = asyncio.ensure_future(pool.run(lambda: "fits"))
        gate.set()
        assert await running is True
        assert await other == "fits"
        pool.close()

    asyncio.run(scenario())
