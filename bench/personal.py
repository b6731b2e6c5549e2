"""The personal route's own cost, in-process: what one request spends outside HTTP.

    python -m bench.personal [--tracks 100000] [--before DIR]

On a real redis-server and synthetic ALS and content artifacts in the published
formats, 200 listeners get 40 interactions each (folded by the stream applier),
then :func:`api.recommend.personal` answers each listener once (after 20 warm-up
requests) and its JSON is encoded, one request after another on one event loop:
the route's candidate generation, Redis reads, ranking and response building,
without the HTTP server or any client. ``--before DIR`` runs the same measurement
on the code checked out in DIR (``git archive <commit> | tar -x -C DIR``) against
the same artifacts and state, for a before/after ratio from one run. Prints one
JSON document and a table; writes ``bench/results/personal.json``.

The whole-stack numbers (HTTP, clients, several processes) are in
``bench.hotpaths`` and ``encore bench serving``; this one says where a request's
own time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

USERS = 200
EVENTS_PER_USER = 40
WARMUP = 20
PARTITIONS = 6


def _settings(redis_url: str, root: Path) -> Any:
    from pydantic import SecretStr

    from models.settings import (
        ApiSettings,
        ArtifactSettings,
        KafkaSettings,
        RedisSettings,
        Settings,
    )

    return Settings(
        kafka=KafkaSettings(partitions=PARTITIONS),
        redis=RedisSettings(url=SecretStr(redis_url)),
        artifacts=ArtifactSettings(root=root),
        api=ApiSettings(dependency_timeout_s=2.0),
    )


async def _seed(redis_url: str, root: Path, tracks: int) -> None:
    """Fold each listener's interactions with the stream applier, as a worker does."""
    from models.codec import encode_batch
    from models.events import Play, Skip
    from models.io.redis_store import RedisStore, connect
    from models.topics import INTERACTIONS, partition_for
    from streams.applier import Record
    from streams.wiring import build_applier, discard_dead_letters

    store = RedisStore(connect(redis_url))
    applier = build_applier(_settings(redis_url, root), store, discard_dead_letters)
    rng = random.Random(0)
    start = datetime.now(UTC) - timedelta(hours=1)
    by_part: dict[int, list[Any]] = {}
    for u in range(USERS):
        for j in range(EVENTS_PER_USER):
            play = rng.random() < 0.7
            common = {
                "event_id": f"p{u}-{j}",
                "user_id": f"u{u}",
                "track_id": f"t{rng.randrange(tracks)}",
                "occurred_at": start + timedelta(seconds=j),
                "duration_ms": 120_000,
            }
            event = Play(**common, ms_played=100_000) if play else Skip(**common, ms_played=5_000)
            by_part.setdefault(partition_for(event.user_id, PARTITIONS), []).append(event)
    keys = await applier.keys()
    for p, events in sorted(by_part.items()):
        offset = await store.get_int(keys.offset(INTERACTIONS, p), -1)
        await applier.apply(INTERACTIONS, p, [Record(offset + 1, encode_batch(events))])
    await store.close()


async def _measure(redis_url: str, root: Path) -> dict[str, Any]:
    """Median and p90 of one personal request plus its JSON, over every listener.

    Imports only what the personal route's code has had for long (the code under
    test may be an older checkout)."""
    from api.app import build_resources
    from api.bundle import BundleWatcher
    from api.recommend import personal
    from models.rerank import Filters

    settings = _settings(redis_url, root)
    res = build_resources(settings)
    await BundleWatcher(res, root, 3).check()
    users = [f"u{i}" for i in range(USERS)]
    for u in users[:WARMUP]:
        orjson.dumps(await personal(res.engine, res.bundle, u, 20, Filters(), None))
    took = []
    for u in users:
        t0 = time.perf_counter()
        orjson.dumps(await personal(res.engine, res.bundle, u, 20, Filters(), None))
        took.append((time.perf_counter() - t0) * 1000)
    res.engine.pool.close()
    took.sort()
    return {
        "requests": len(took),
        "median_ms": round(statistics.median(took), 2),
        "p90_ms": round(took[int(0.9 * len(took))], 2),
    }


def _measure_in(code: Path, redis_url: str, root: Path) -> dict[str, Any]:
    """:func:`_measure` run by the code in ``code`` (this file, that code's modules)."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, __file__, "--measure", redis_url, str(root)]
    done = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True, check=True)
    return dict(orjson.loads(done.stdout.strip().splitlines()[-1]))


def run(tracks: int, before: Path | None) -> dict[str, Any]:
    from bench.common import machine, publish_random_space, stack
    from bench.serving import publish_random_content
    from models.io.artifacts import ArtifactStore

    here = Path(__file__).resolve().parent.parent
    with stack("personal") as s:
        root = s.run_dir / "artifacts"
        publish_random_space(root, tracks, users=1_000)
        publish_random_content(root, tracks, str(ArtifactStore(root).current_version("als")))
        asyncio.run(_seed(s.redis.address, root, tracks))
        runs = {}
        if before is not None:
            runs["before"] = _measure_in(before, s.redis.address, root)
        runs["after"] = _measure_in(here, s.redis.address, root)
    out: dict[str, Any] = {
        "name": "personal",
        "machine": machine(),
        "params": {"tracks": tracks, "users": USERS, "events_per_user": EVENTS_PER_USER},
        "runs": runs,
    }
    if "before" in runs:
        out["speedup_median"] = round(runs["before"]["median_ms"] / runs["after"]["median_ms"], 2)
    return out


def render(r: dict[str, Any]) -> str:
    from bench.common import table

    rows = [[name, x["requests"], x["median_ms"], x["p90_ms"]] for name, x in r["runs"].items()]
    note = f"\n\nbefore / after (median): {r['speedup_median']}x" if "speedup_median" in r else ""
    return table(rows, ["code", "requests", "median ms", "p90 ms"]) + note


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        redis_url, root = sys.argv[2], Path(sys.argv[3])
        print(orjson.dumps(asyncio.run(_measure(redis_url, root))).decode(), flush=True)
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--before", type=Path, help="a checkout of the baseline code")
    a = ap.parse_args()
    from bench.common import save

    result = run(a.tracks, a.before)
    path = save("personal", result)
    print(orjson.dumps(result).decode())
    print(render(result))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
