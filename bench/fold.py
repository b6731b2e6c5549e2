"""The stream applier's own cost per event, in-process, by batch size.

    python -m bench.fold [--events 400000]

The load generator's synthetic interactions (500-event batch envelopes, 50,000
listeners, 20,000 tracks, 6 partitions) are applied by :class:`streams.applier.Applier`
to the in-memory state store, one partition after another, in batches of 4, 40 and
400 records (2,000, 20,000 and 200,000 events at most): decode, dedup, fold,
encode and the commit, without Faust, the broker or Redis. CPU time per event
(the process's own, so other load on the machine matters less), median of three
passes over a fresh store. Prints one JSON document and a table; writes
``bench/results/fold.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from bench.common import machine, save, table
from bench.loadgen import records, synthetic
from models.apply import TrendConfig
from models.io.memory_store import MemoryStore
from models.state import FoldConfig
from models.topics import INTERACTIONS
from streams.applier import Applier, ItemLookup, Record
from streams.itemspace import ItemSpace

PARTITIONS = 6
USERS = 50_000
TRACKS = 20_000
BATCHES = (4, 40, 400)


async def _discard(*_args: Any) -> None:
    return None


async def _pass(by_partition: dict[int, list[bytes]], space: ItemSpace, batch: int) -> float:
    """CPU seconds per applied event over one fresh store."""
    applier = Applier(
        MemoryStore(),
        prefix="enc",
        partitions=PARTITIONS,
        fold=FoldConfig(),
        trend=TrendConfig(),
        dedup_window=200_000,
        max_record_bytes=16 * 2**20,
        dead_letters=_discard,
        items=ItemLookup(space),
    )
    now_ms = int(time.time() * 1000)
    applied = 0
    t0 = time.process_time()
    for p, values in by_partition.items():
        for i in range(0, len(values), batch):
            chunk = [
                Record(offset=i + j, value=v, timestamp_ms=now_ms)
                for j, v in enumerate(values[i : i + batch])
            ]
            applied += (await applier.apply(INTERACTIONS, p, chunk)).applied
    return (time.process_time() - t0) / max(applied, 1)


def run(events: int) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    docs = synthetic(events, USERS, TRACKS, 0, start)
    by_partition: dict[int, list[bytes]] = {}
    for p, value, _n in records(docs, PARTITIONS, 500):
        by_partition.setdefault(p, []).append(value)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(TRACKS, 64)).astype(np.float32)
    space = ItemSpace("bench", [f"t{i}" for i in range(TRACKS)], vectors)
    rows = []
    for batch in BATCHES:
        per_event = [asyncio.run(_pass(by_partition, space, batch)) for _ in range(3)]
        us = statistics.median(per_event) * 1e6
        rows.append(
            {
                "records_per_apply": batch,
                "events_per_apply": batch * 500,
                "cpu_us_per_event": round(us, 1),
                "events_per_cpu_s": round(1e6 / us),
            }
        )
    return {
        "name": "fold",
        "machine": machine(),
        "params": {"events": events, "users": USERS, "tracks": TRACKS, "partitions": PARTITIONS},
        "rows": rows,
    }


def render(r: dict[str, Any]) -> str:
    head = [
        "records per apply",
        "events per apply (at most)",
        "CPU us per event",
        "events per CPU s",
    ]
    body = [
        [
            x["records_per_apply"],
            f"{x['events_per_apply']:,}",
            x["cpu_us_per_event"],
            f"{x['events_per_cpu_s']:,}",
        ]
        for x in r["rows"]
    ]
    return table(body, head)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=400_000)
    a = ap.parse_args()
    result = run(a.events)
    print(orjson.dumps(result).decode())
    print(render(result))
    print(save("fold", result))


if __name__ == "__main__":
    main()
