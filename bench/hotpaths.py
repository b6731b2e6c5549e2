"""Does a saturated query route slow everything else? Before/after, 1 and 2 API processes.

    python -m bench.hotpaths [--before DIR] [--tracks 20000] [--seconds 15]

On one embedded broker and Redis and one set of synthetic artifacts (ALS and
content in the published formats), with 40,000 events folded by a stream
worker first (so the 1,000 listeners the personal route asks for have a
history and every candidate source runs), each configuration starts the API
(``encore api``; ``--before DIR`` adds one run of the code checked out in DIR,
e.g. ``git archive <commit> | tar -x -C DIR``, as the baseline) and measures:

1. /healthz and the personal route at saturation (16 closed-loop clients each,
   one after the other): requests/s, and personal over /healthz;
2. 64 closed-loop clients posting distinct long queries to ``POST /v1/recommend``
   (every one a cache miss: the text model encodes each) while one client times
   /healthz and one times the personal route, one request after another;
   and, over that window, the CPU the API's processes used (in cores) and the
   share of the whole machine's CPU time that was busy;
3. resident memory of the API's whole process group (RSS, and PSS, which splits
   pages shared by processes: memory-mapped artifacts, the page cache); with
   ``--memory-only`` only this (written to ``bench/results/hotpaths-memory.json``).

Clients are separate processes on loopback. Prints one JSON document and a table;
writes ``bench/results/hotpaths.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson

_VOCABULARY = (
    "rain window night city lights slow piano heart broken summer road dust guitar "
    "ocean waves morning coffee quiet sunday dancing neon drums bass warm vinyl old "
    "memories autumn leaves falling train station goodbye letter candle dark forest "
    "mountain wind river stars lonely highway radio static dream fading gold sky"
)
WORDS = _VOCABULARY.split()


def long_query(rng: random.Random, i: int) -> str:
    """A distinct query of about 30 words (never in the embedding cache)."""
    return f"{' '.join(rng.choices(WORDS, k=30))} number {i}"


async def client(base: str, kind: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed loop: ``concurrency`` workers send requests back to back for ``seconds``."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    rng = random.Random(kind)
    counter = iter(range(10**9))
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < end:
                i = next(counter)
                if kind == "healthz":
                    request = session.get("/healthz")
                elif kind == "personal":
                    request = session.get(
                        f"/v1/users/u{rng.randrange(1000)}/recommendations", params={"n": "20"}
                    )
                else:
                    request = session.post(
                        "/v1/recommend", json={"query": long_query(rng, i), "top_k": 20}
                    )
                t0 = time.perf_counter()
                try:
                    async with request as r:
                        await r.read()
                        statuses[str(r.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    return {
        "kind": kind,
        "concurrency": concurrency,
        "requests": len(latencies),
        "statuses": dict(statuses),
        "rps": round(len(latencies) / elapsed, 1),
        "ok_rps": round(statuses.get("200", 0) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2),
    }


def _group(pid: int) -> list[int]:
    """A process and its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children.get(p, [])
    return seen


def _cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds used so far by these processes."""
    ticks = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


def group_memory_mib(pid: int) -> dict[str, float]:
    """RSS and PSS summed over a process and its descendants."""
    seen = _group(pid)
    from bench.common import smaps_kib

    sizes = [smaps_kib(p) for p in seen]
    rss = sum(k.get("Rss", 0) for k in sizes)
    pss = sum(k.get("Pss", 0) for k in sizes)
    return {
        "processes": len(seen),
        "rss_mib": round(rss / 1024, 1),
        "pss_mib": round(pss / 1024, 1),
    }


def _client_proc(base: str, kind: str, concurrency: int, seconds: float) -> Any:
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "bench.hotpaths", "client", base, kind, str(concurrency),
         str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip


def _result(proc: Any) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=120)
    return orjson.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(base: str, seconds: float, api_pid: int) -> dict[str, Any]:
    """The three phases against one running API (with the CPU the API's processes and
    the whole machine used while the query route was flooded)."""
    healthz = _result(_client_proc(base, "healthz", 16, 8))
    personal = _result(_client_proc(base, "personal", 16, 8))
    api = _group(api_pid)
    cpu0, busy0, wall0 = _cpu_seconds(api), _machine_busy(), time.monotonic()
    procs = [
        _client_proc(base, "query", 64, seconds),
        _client_proc(base, "healthz", 1, seconds),
        _client_proc(base, "personal", 1, seconds),
    ]
    query, h_during, p_during = (_result(p) for p in procs)
    cpu1, busy1, wall1 = _cpu_seconds(api), _machine_busy(), time.monotonic()
    return {
        "flood_api_cores": round((cpu1 - cpu0) / (wall1 - wall0), 2),
        "flood_machine_busy": round((busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1), 3),
        "healthz_saturated": healthz,
        "personal_saturated": personal,
        "personal_over_healthz": round(personal["ok_rps"] / max(healthz["ok_rps"], 1e-9), 3),
        "query_saturated": query,
        # queries answered/s while the route is flooded (the healthz and personal timers
        # share the server) over the same server's /healthz rate at saturation
        "query_over_healthz": round(query["ok_rps"] / max(healthz["ok_rps"], 1e-9), 4),
        "healthz_during_queries": h_during,
        "personal_during_queries": p_during,
    }


def _loaded_everywhere(base: str, in_a_row: int = 12, limit_s: float = 300) -> None:
    """Wait until requests on fresh connections (which land on any of the processes)
    find the artifacts loaded ``in_a_row`` times in a row."""
    import httpx

    t0, seen = time.monotonic(), 0
    while seen < in_a_row and time.monotonic() - t0 < limit_s:
        try:
            loaded = httpx.get(base + "/readyz", timeout=5).json()["checks"]["artifacts"]
            seen = seen + 1 if loaded["content"] and loaded["als"] else 0
        except (httpx.HTTPError, KeyError, ValueError):
            seen = 0
        time.sleep(0.1)


HISTORY_EVENTS = 40_000
"""Events folded before the API starts: about 40 per listener of the personal route."""


def listen(s: Any, tracks: int, events: int = HISTORY_EVENTS) -> dict[str, Any]:
    """Give the 1,000 listeners of the personal route a history (plays, skips, likes of
    catalog tracks, folded by a stream worker), so their requests use every candidate
    source as a real listener's do; every configuration reads the same state."""
    from bench.common import loadgen
    from bench.stream import high_watermarks, wait_applied

    gen = loadgen(s.broker.address, events, 1_000, tracks, "--per-record", "50")
    last = asyncio.run(high_watermarks(s.broker.address, s.partitions))
    worker = s.spawn("worker", [sys.executable, "-m", "encore.cli", "worker"])
    try:
        applied = asyncio.run(wait_applied(s.redis.address, s.partitions, last, limit_s=600))
    finally:
        worker.stop()
    return {"events": gen.get("events", events), "users": 1_000, "fold_s": applied["done_s"]}


def run(
    before: Path | None, tracks: int, seconds: float, memory_only: bool = False
) -> dict[str, Any]:
    from bench.common import machine, publish_random_space, stack
    from bench.serving import _wait, publish_random_content
    from encore.services import free_port, spawn

    here = Path(__file__).resolve().parent.parent
    configs = [("before", before, 1)] if before is not None else []
    configs += [("after", here, 1), ("after", here, 2)]
    runs = []
    with stack("hotpaths") as s:
        root = s.run_dir / "artifacts"
        version = publish_random_space(root, tracks, users=1_000)
        publish_random_content(root, tracks, version)
        history = listen(s, tracks)
        for label, code, n in configs:
            port = free_port()
            api = spawn(
                f"api-{label}-{n}",
                [sys.executable, "-m", "encore.cli", "api"],
                s.run_dir,
                env=s.env(ENCORE_API_PORT=str(port), ENCORE_API_PROCESSES=str(n)),
                cwd=code,
            )
            try:
                base = f"http://127.0.0.1:{port}"
                _wait(base)
                _loaded_everywhere(base)
                time.sleep(3)  # the model warm-up encode
                result = {} if memory_only else measure(base, seconds, api.pid)
                runs.append(
                    {"code": label, "processes": n, **result, "memory": group_memory_mib(api.pid)}
                )
                print(orjson.dumps(runs[-1]).decode(), file=sys.stderr, flush=True)
            finally:
                api.stop()
    return {
        "name": "hotpaths",
        "machine": machine(),
        "params": {
            "tracks": tracks,
            "query_seconds": seconds,
            "query_clients": 64,
            "memory_only": memory_only,
            "history": history,
        },
        "runs": runs,
    }


def render(r: dict[str, Any]) -> str:
    from bench.common import table

    rows = []
    for x in r["runs"]:
        q, h, p = x["query_saturated"], x["healthz_during_queries"], x["personal_during_queries"]
        rows.append(
            [
                x["code"],
                x["processes"],
                h["p50_ms"],
                h["p99_ms"],
                h["max_ms"],
                p["p99_ms"],
                q["ok_rps"],
                q["statuses"].get("503", 0),
                x["healthz_saturated"]["ok_rps"],
                x["personal_saturated"]["ok_rps"],
                x["personal_over_healthz"],
                x.get("query_over_healthz", "-"),
                x["memory"]["rss_mib"],
                x["memory"]["pss_mib"],
                x.get("flood_api_cores", "-"),
                x.get("flood_machine_busy", "-"),
            ]
        )
    head = ["code", "procs", "healthz p50 ms", "healthz p99 ms", "healthz max ms",
            "personal p99 ms", "query ok/s", "query 503s", "healthz/s", "personal/s",
            "personal/healthz", "query/healthz", "RSS MiB", "PSS MiB",
            "API cores used, flood", "machine busy, flood"]  # fmt: skip
    return table(rows, head)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        base, kind, conc, secs = sys.argv[2:6]
        result = asyncio.run(client(base, kind, int(conc), float(secs)))
        print(orjson.dumps(result).decode(), flush=True)
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", type=Path, help="a checkout of the baseline code")
    ap.add_argument("--tracks", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--memory-only", action="store_true", help="start, load, measure memory")
    a = ap.parse_args()
    from bench.common import save

    result = run(a.before, a.tracks, a.seconds, a.memory_only)
    path = save("hotpaths-memory" if a.memory_only else "hotpaths", result)
    print(orjson.dumps(result).decode())
    if a.memory_only:
        for x in result["runs"]:
            print(f"{x['code']} x{x['processes']}: {x['memory']}")
    else:
        print(render(result))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
