"""Freshness: from an event's produce to (a) the user's Redis state and (b) their next
recommendation changing, under a background stream of events.

Each probe asks for a probe user's recommendations, then produces a skip of the
top track and measures (a) when the user's state counts the event and (b) when
a new request no longer leads with the skipped track (recently played tracks are
filtered). The background load generator, a separate process, sends 2,000
events/s open-loop the whole time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.common import machine, percentiles, publish_random_space, save, stack, table
from encore.services import free_port
from models.codec import encode_event
from models.events import Skip
from models.io.redis_store import connect
from models.keys import Keys
from models.records import decode_user
from models.topics import INTERACTIONS, partition_for


async def probes(base: str, bootstrap: str, redis_url: str, n: int) -> dict[str, list[float]]:
    """Run ``n`` skip probes; latencies in ms for the state and the recommendation."""
    redis = connect(redis_url, timeout_s=5)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await producer.start()
    state_ms: list[float] = []
    rec_ms: list[float] = []
    keys = Keys("enc", 0, 6)
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        for i in range(n):
            user = f"probe-{i}"
            first = (await client.get(f"/v1/users/{user}/recommendations", params={"n": 5})).json()[
                "items"
            ]
            if not first:
                continue
            top = first[0]["track_id"]
            skip = Skip(
                event_id=f"probe-skip-{i}",
                occurred_at=datetime.now(UTC),
                user_id=user,
                track_id=top,
                ms_played=2_000,
            )
            t0 = time.perf_counter()
            await producer.send(INTERACTIONS, encode_event(skip), partition=partition_for(user, 6))
            got_state = got_rec = None
            while (got_state is None or got_rec is None) and time.perf_counter() - t0 < 10:
                now = time.perf_counter()
                if got_state is None and decode_user(await redis.get(keys.user(user))).n >= 1:
                    got_state = now
                if got_rec is None:
                    items = (
                        await client.get(f"/v1/users/{user}/recommendations", params={"n": 5})
                    ).json()["items"]
                    if not items or items[0]["track_id"] != top:
                        got_rec = time.perf_counter()
                await asyncio.sleep(0.001)
            if got_state is not None:
                state_ms.append((got_state - t0) * 1000)
            if got_rec is not None:
                rec_ms.append((got_rec - t0) * 1000)
    await producer.stop()
    await redis.aclose()
    return {"state": state_ms, "recommendation": rec_ms}


def run(probes_n: int = 200, background_rate: float = 2_000) -> dict[str, Any]:
    with stack("freshness") as s:
        publish_random_space(s.run_dir / "artifacts", 10_000, users=2_000)
        s.spawn("worker", [sys.executable, "-m", "encore.cli", "worker"])
        port = free_port()
        s.spawn("api", [sys.executable, "-m", "encore.cli", "api"], ENCORE_API_PORT=str(port))
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(6)  # the worker joins its group
        seconds = probes_n * 0.25 + 30
        load = s.spawn(
            "loadgen",
            [
                sys.executable,
                "-m",
                "bench.loadgen",
                "--bootstrap",
                s.broker.address,
                "--events",
                str(int(background_rate * seconds)),
                "--rate",
                str(background_rate),
                "--per-record",
                "50",
                "--users",
                "20000",
                "--tracks",
                "10000",
            ],
        )
        time.sleep(3)
        lat = asyncio.run(probes(base, s.broker.address, s.redis.address, probes_n))
        load.stop()
    return {
        "name": "freshness",
        "machine": machine(),
        "params": {
            "probes": probes_n,
            "background_events_per_s": background_rate,
            "background_events_per_record": 50,
        },
        "state_ms": percentiles(lat["state"]),
        "recommendation_ms": percentiles(lat["recommendation"]),
        "probes_answered": len(lat["recommendation"]),
        "goal": {"recommendation_p99_ms": 100},
    }


def render(r: dict[str, Any]) -> str:
    rows = [
        [label, r[key]["p50"], r[key]["p95"], r[key]["p99"], r[key]["max"]]
        for label, key in (
            ("produce -> Redis user state", "state_ms"),
            ("produce -> next recommendation changed", "recommendation_ms"),
        )
    ]
    return (
        table(rows, ["freshness (ms)", "p50", "p95", "p99", "max"])
        + f"\n\nbackground {r['params']['background_events_per_s']:,.0f} events/s;"
        " goal p99 <= 100 ms"
    )


def main() -> None:
    result = run(probes_n=int(os.environ.get("ENCORE_BENCH_PROBES", "200")))
    path = save("freshness", result)
    print(render(result))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
