"""Load generator, run as its own process: synthetic interactions into the topics.

    python -m bench.loadgen --bootstrap HOST:PORT --events 1000000 [--rate 2000]

Events are grouped per partition into batch envelopes (as the Python producer
does); with ``--rate`` they are sent open-loop at that many events per second.
Prints one JSON line with what it sent and how fast.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer

from models.topics import INTERACTIONS, partition_for


def synthetic(
    n: int, users: int, tracks: int, seed: int, start: datetime, prefix: str = "bench"
) -> list[dict[str, Any]]:
    """Interaction event documents: Zipf-popular tracks, mixed types, recent times."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, size=n)
    ranks = rng.zipf(1.2, size=n)
    t = (ranks - 1) % tracks
    kind = rng.choice(["play", "skip", "like"], size=n, p=[0.7, 0.25, 0.05])
    offs = np.sort(rng.uniform(0, 3_600, size=n))
    docs = []
    for i in range(n):
        when = (start + timedelta(seconds=float(offs[i]))).isoformat()
        d: dict[str, Any] = {
            "type": str(kind[i]),
            "event_id": f"{prefix}-{seed}-{i}",
            "occurred_at": when,
            "user_id": f"u{u[i]}",
            "track_id": f"t{t[i]}",
        }
        if d["type"] == "play":
            d["ms_played"], d["duration_ms"] = 180_000, 200_000
        elif d["type"] == "skip":
            d["ms_played"] = 5_000
        docs.append(d)
    return docs


def records(
    docs: list[dict[str, Any]], partitions: int, per_record: int
) -> list[tuple[int, bytes, int]]:
    """``(partition, value, events)`` batch records, order kept per partition."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for d in docs:
        groups.setdefault(partition_for(d["user_id"], partitions), []).append(d)
    out = []
    for p, members in groups.items():
        for i in range(0, len(members), per_record):
            chunk = members[i : i + per_record]
            out.append(
                (
                    p,
                    orjson.dumps({"type": "batch", "schema_version": 1, "events": chunk}),
                    len(chunk),
                )
            )
    return out


async def send(bootstrap: str, recs: list[tuple[int, bytes, int]], rate: float | None) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=8 * 2**20,
        max_batch_size=2**20,
    )
    await producer.start()
    started = time.perf_counter()
    sent_events = 0
    try:
        futures = []
        for p, value, n in recs:
            if rate:
                due = started + sent_events / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            futures.append(await producer.send(INTERACTIONS, value, partition=p))
            sent_events += n
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--tracks", type=int, default=20_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--per-record", type=int, default=500)
    ap.add_argument("--rate", type=float, default=None, help="events/s, open loop")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t0 = time.perf_counter()
    start = datetime.now(UTC) - timedelta(hours=1)
    docs = synthetic(a.events, a.users, a.tracks, a.seed, start)
    recs = records(docs, a.partitions, a.per_record)
    built = time.perf_counter() - t0
    seconds = asyncio.run(send(a.bootstrap, recs, a.rate))
    print(
        orjson.dumps(
            {
                "events": a.events,
                "records": len(recs),
                "build_s": round(built, 2),
                "send_s": round(seconds, 2),
                "events_per_s": round(a.events / seconds, 1),
            }
        ).decode(),
        flush=True,
    )


if __name__ == "__main__":
    main()
