"""The stream applier's own cost per event, in-process, by batch size and history.

    python -m bench.fold [--events 400000] [--before DIR]

The load generator's synthetic interactions (500-event batch envelopes, 50,000
listeners, 20,000 tracks, 6 partitions) are applied by :class:`streams.applier.Applier`
to the in-memory state store, one partition after another, in batches of 4, 40 and
400 records (2,000, 20,000 and 200,000 events at most): decode, dedup, fold,
encode and the commit, without Faust, the broker or Redis. Two starting points:
every listener new, and every listener already holding a full history (200
earlier events, the steady state of a running system, where each write encodes
the whole history). CPU time per event (the process's own, so other load on the
machine matters less), median of three passes over a fresh store. ``--before
DIR`` measures the code checked out in DIR the same way in the same run, for a
ratio. Prints one JSON document and a table; writes ``bench/results/fold.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.common import machine, save, table

PARTITIONS = 6
USERS = 50_000
TRACKS = 20_000
BATCHES = (4, 40, 400)
HISTORY = 200  # the fold's default history length
TEMPLATES = 16


async def _discard(*_args: Any) -> None:
    return None


def _histories(start_ms: int) -> list[list[list[Any]]]:
    """Full histories of 200 earlier events (the load generator's mix of types, varied
    partial plays), ending before the benchmark's events start."""
    rng = np.random.default_rng(1)
    out = []
    for _ in range(TEMPLATES):
        times = np.sort(rng.integers(start_ms - 30 * 86_400_000, start_ms, size=HISTORY))
        hist = []
        for t in times.tolist():
            kind = str(rng.choice(["play", "skip", "like"], p=[0.7, 0.25, 0.05]))
            w = {"play": 1.0 if rng.random() < 0.6 else round(float(rng.uniform(-0.5, 0.3)), 4)}
            w |= {"skip": -0.7333, "like": 1.5}
            hist.append([f"t{int(rng.integers(TRACKS))}", t, kind, w[kind]])
        out.append(hist)
    return out


async def _pass(
    by_partition: dict[int, list[bytes]], space: Any, batch: int, start_ms: int, full: bool
) -> float:
    """CPU seconds per applied event over one fresh store (listeners new, or each with a
    full stored history)."""
    from models import ops
    from models.apply import TrendConfig
    from models.io.memory_store import MemoryStore
    from models.keys import Keys
    from models.records import encode_user
    from models.state import FoldConfig, UserState
    from models.topics import INTERACTIONS, partition_for
    from streams.applier import Applier, ItemLookup, Record

    store = MemoryStore()
    first = 0
    if full:
        keys = Keys("enc", 0, PARTITIONS)
        entries: list[Any] = _histories(start_ms)  # lists: older checkouts take no History
        stored = [encode_user(UserState(hist=h, n=HISTORY, last_ms=int(h[-1][1]))) for h in entries]
        writes: dict[int, list[Any]] = {}
        for u in range(USERS):
            p = partition_for(f"u{u}", PARTITIONS)
            writes.setdefault(p, []).append(ops.set_(keys.user(f"u{u}"), stored[u % TEMPLATES]))
        for p in range(PARTITIONS):
            await store.commit(keys.offset(INTERACTIONS, p), -1, 0, writes.get(p, []))
        first = 1
    applier = Applier(
        store,
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
                Record(offset=first + i + j, value=v, timestamp_ms=now_ms)
                for j, v in enumerate(values[i : i + batch])
            ]
            applied += (await applier.apply(INTERACTIONS, p, chunk)).applied
    return (time.process_time() - t0) / max(applied, 1)


def _measure(events: int) -> list[dict[str, Any]]:
    """Every row, measured by the code this process imports."""
    from bench.loadgen import records, synthetic
    from streams.itemspace import ItemSpace

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    docs = synthetic(events, USERS, TRACKS, 0, start)
    by_partition: dict[int, list[bytes]] = {}
    for p, value, _n in records(docs, PARTITIONS, 500):
        by_partition.setdefault(p, []).append(value)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(TRACKS, 64)).astype(np.float32)
    space = ItemSpace("bench", [f"t{i}" for i in range(TRACKS)], vectors)
    start_ms = int(start.timestamp() * 1000)
    rows = []
    for full in (False, True):
        for batch in BATCHES:
            per_event = [
                asyncio.run(_pass(by_partition, space, batch, start_ms, full)) for _ in range(3)
            ]
            us = statistics.median(per_event) * 1e6
            rows.append(
                {
                    "history": HISTORY if full else 0,
                    "records_per_apply": batch,
                    "events_per_apply": batch * 500,
                    "cpu_us_per_event": round(us, 1),
                    "events_per_cpu_s": round(1e6 / us),
                }
            )
    return rows


def _measure_in(code: Path, events: int) -> list[dict[str, Any]]:
    """:func:`_measure` run by the code in ``code`` (this file, that code's modules)."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, __file__, "--measure", str(events)]
    done = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True, check=True)
    return list(orjson.loads(done.stdout.strip().splitlines()[-1]))


def run(events: int, before: Path | None) -> dict[str, Any]:
    rows = _measure(events)
    if before is not None:
        for row, old in zip(rows, _measure_in(before, events), strict=True):
            row["before_cpu_us_per_event"] = old["cpu_us_per_event"]
            row["speedup"] = round(old["cpu_us_per_event"] / row["cpu_us_per_event"], 2)
    return {
        "name": "fold",
        "machine": machine(),
        "params": {
            "events": events,
            "users": USERS,
            "tracks": TRACKS,
            "partitions": PARTITIONS,
            "before": str(before) if before else None,
        },
        "rows": rows,
    }


def render(r: dict[str, Any]) -> str:
    before = "speedup" in r["rows"][0]
    head = [
        "stored history per listener",
        "records per apply",
        "events per apply (at most)",
        "CPU us per event",
        "events per CPU s",
        *(["before: CPU us per event", "before / after"] if before else []),
    ]
    body = [
        [
            f"{x['history']} events" if x["history"] else "none (new listeners)",
            x["records_per_apply"],
            f"{x['events_per_apply']:,}",
            x["cpu_us_per_event"],
            f"{x['events_per_cpu_s']:,}",
            *([x["before_cpu_us_per_event"], f"{x['speedup']}x"] if before else []),
        ]
        for x in r["rows"]
    ]
    return table(body, head)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--before", type=Path, help="a checkout of the baseline code")
    ap.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure is not None:
        print(orjson.dumps(_measure(a.measure)).decode())
        return
    result = run(a.events, a.before)
    print(orjson.dumps(result).decode())
    print(render(result))
    print(save("fold", result))


if __name__ == "__main__":
    main()
