"""Open-loop HTTP load generator, run as its own process.

    python -m bench.httpload --base URL --rate 200 --seconds 20 --kind personal|query

Requests are scheduled at fixed arrival times (``i / rate``) whatever the
responses do, and each latency is measured from its scheduled time, so a slow
server cannot hide its queueing delay (no coordinated omission). Prints one
JSON line: p50/p95/p99/max in ms, achieved rate, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from typing import Any

import aiohttp
import numpy as np
import orjson

QUERIES = [
    "calm music to fall asleep",
    "rainy sunday",
    "pump me up",
    "late night jazz",
    "happy summer songs",
    "sad songs about heartbreak",
    "energetic workout",
    "focus piano",
    "i miss my ex",
    "party all night",
    "chill electronic",
    "angry metal",
    "romantic dinner",
    "acoustic folk",
    "dreamy indie",
    "soulful groove",
    "dark and heavy",
    "road trip anthems",
]


async def run(
    base: str, rate: float, seconds: float, kind: str, users: int, concurrency: int
) -> dict[str, Any]:
    n = int(rate * seconds)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    rng = random.Random(7)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                if kind == "personal":
                    request = session.get(
                        f"/v1/users/u{rng.randrange(users)}/recommendations", params={"n": "20"}
                    )
                else:
                    request = session.post(
                        "/v1/recommend", json={"query": rng.choice(QUERIES), "top_k": 20}
                    )
                async with request as r:
                    await r.read()
                    statuses[str(r.status)] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
            latencies.append((time.perf_counter() - due) * 1000)

        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - start
    lat = np.asarray(latencies)
    ok = statuses.get("200", 0)
    return {
        "kind": kind,
        "rate": rate,
        "requests": n,
        "ok": ok,
        "errors": n - ok,
        "statuses": dict(statuses),
        "achieved_rps": round(n / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p95_ms": round(float(np.percentile(lat, 95)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--kind", choices=("personal", "query"), default="personal")
    ap.add_argument("--users", type=int, default=1_000)
    ap.add_argument("--concurrency", type=int, default=256)
    a = ap.parse_args()
    result = asyncio.run(run(a.base, a.rate, a.seconds, a.kind, a.users, a.concurrency))
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
