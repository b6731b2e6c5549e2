"""Decode micro-benchmark: records/s and events/s of the two record decoders.

    python -m bench.decode [--events 100000] [--per-record 500] [--repeat 5]

Both decode the same batch envelopes of plays, skips and likes, made as the load
generator makes them: :func:`models.codec.decode_record` (pydantic, the contract)
and :func:`models.fastcodec.decode_record` (msgspec, what the stream workers
call). Best of ``--repeat`` passes; prints one JSON line and a table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from bench.common import machine, table
from bench.loadgen import records, synthetic
from models import codec, fastcodec

LIMIT = 1_048_576


def rate(
    decode: Callable[..., Any], values: list[bytes], events: int, repeat: int
) -> dict[str, float]:
    """Best-of-``repeat`` records/s and events/s of ``decode`` over ``values``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for v in values:
            decode(v, max_bytes=LIMIT)
        best = min(best, time.perf_counter() - t0)
    return {
        "seconds": round(best, 4),
        "records_per_s": round(len(values) / best, 1),
        "events_per_s": round(events / best, 1),
    }


def run(events: int = 100_000, per_record: int = 500, repeat: int = 5) -> dict[str, Any]:
    docs = synthetic(events, 50_000, 20_000, seed=1, start=datetime(2024, 5, 1, tzinfo=UTC))
    values = [v for _, v, _ in records(docs, 6, per_record)]
    pydantic = rate(codec.decode_record, values, events, repeat)
    fast = rate(fastcodec.decode_record, values, events, repeat)
    return {
        "machine": machine(),
        "events": events,
        "records": len(values),
        "events_per_record": per_record,
        "mean_record_bytes": round(sum(map(len, values)) / len(values)),
        "pydantic": pydantic,
        "msgspec": fast,
        "speedup": round(fast["events_per_s"] / pydantic["events_per_s"], 2),
    }


def render(r: dict[str, Any]) -> str:
    rows = [
        [name, f"{r[key]['records_per_s']:,.0f}", f"{r[key]['events_per_s']:,.0f}"]
        for name, key in (
            ("pydantic (models.codec)", "pydantic"),
            ("msgspec (models.fastcodec)", "msgspec"),
        )
    ]
    n, size = r["events_per_record"], r["mean_record_bytes"]
    head = f"{r['records']} records of {n} events, {size:,} bytes each"
    return (
        head
        + "\n"
        + table(rows, ["decoder", "records/s", "events/s"])
        + f"\nspeedup: {r['speedup']}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--per-record", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    result = run(a.events, a.per_record, a.repeat)
    print(orjson.dumps(result).decode())
    print(render(result))


if __name__ == "__main__":
    main()
