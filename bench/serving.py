"""Serving latency and throughput at fixed request rates, with events streaming in.

For catalogs of 10k and 100k tracks (synthetic factors and text vectors in the
published artifact formats, indices from the one index factory), the API runs
as its own process, one stream worker applies a background of 500 events/s,
and the open-loop load generator (another process) calls the personal and the
query routes at 20, 50, 100, 200 and 500 requests/s (20 shows the latency below
saturation on this machine). Between runs the API is given time to work off any
backlog, so an overloaded run does not spill into the next. Query texts come
from a fixed set of 18, so their embeddings are cached after first use; the cost
of a first (uncached) query is measured separately.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import httpx
import numpy as np

from bench.common import machine, publish_random_space, run_json, save, stack, table
from bench.hotpaths import group_memory_mib
from encore.services import free_port
from models.index import build_index, neighbour_table
from models.io.artifacts import ArtifactStore, save_array, save_json

GENRES = ["ambient", "jazz", "rock", "pop", "electronic", "folk", "metal", "soul", "hip-hop"]


def publish_random_content(root: Path, tracks: int, cf_version: str, seed: int = 0) -> str:
    """A "content" artifact with random text vectors and moods (for latency, not quality)."""
    rng = np.random.default_rng(seed)
    store = ArtifactStore(root)
    path = store.stage("content")
    text = rng.normal(size=(tracks, 384)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    items = [
        {
            "title": f"Track {i}",
            "artist": f"Artist {i % (tracks // 10)}",
            "artist_id": f"a{i % (tracks // 10)}",
            "genre": GENRES[i % len(GENRES)],
            "tags": [GENRES[i % len(GENRES)]],
            "year": 1960 + i % 60,
        }
        for i in range(tracks)
    ]
    save_json(path, "item_ids.json", [f"t{i}" for i in range(tracks)])
    save_json(path, "items.json", items)
    save_array(path, "text", text)
    save_array(path, "mood", rng.uniform(-1, 1, size=(tracks, 2)).astype(np.float32))
    index = build_index(text)
    faiss.write_index(index, str(path / "text.faiss"))
    neighbours, scores = neighbour_table(index, text)
    save_array(path, "text_neighbours", neighbours)
    save_array(path, "text_neighbour_scores", scores)
    save_array(path, "text_to_mood", (rng.normal(size=(384, 2)) * 0.05).astype(np.float32))
    save_array(path, "text_to_mood_bias", np.zeros(2, np.float32))
    save_json(
        path,
        "lexicon.json",
        {"calm": [0.4, -0.7], "happy": [0.8, 0.4], "sad": [-0.7, -0.3], "energetic": [0.4, 0.9]},
    )
    return store.publish("content", path, params={"cf_version": cf_version, "synthetic": True})


def _wait(base: str, limit_s: float = 180) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        try:
            r = httpx.get(base + "/readyz", timeout=2)
            if (
                r.json()["checks"]["artifacts"]["content"]
                and r.json()["checks"]["artifacts"]["als"]
            ):
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError("the API did not load its artifacts")


def drained(base: str, limit_s: float = 300) -> float:
    """Wait until the API has worked off what an overloaded run left queued (three
    liveness answers in a row under 50 ms), so one run's backlog never lands in the
    next run's numbers. Returns the seconds waited."""
    t0 = time.monotonic()
    quick = 0
    with httpx.Client(base_url=base, timeout=30) as client:  # one connection, no setup cost
        while quick < 3 and time.monotonic() - t0 < limit_s:
            started = time.perf_counter()
            try:
                client.get("/healthz")
                quick = quick + 1 if time.perf_counter() - started < 0.05 else 0
            except httpx.HTTPError:
                quick = 0
            time.sleep(0.2)
    return round(time.monotonic() - t0, 1)


def cold_query_ms(base: str, n: int = 5) -> float:
    """Median latency of queries whose embedding is not cached yet."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        httpx.post(
            base + "/v1/recommend",
            json={"query": f"unseen words number {i} {time.time()}"},
            timeout=30,
        )
        times.append((time.perf_counter() - t0) * 1000)
    return round(float(np.median(times)), 1)


def run(
    catalogs: tuple[int, ...] = (10_000, 100_000),
    rates: tuple[int, ...] = (20, 50, 100, 200, 500),
    seconds: float = 15,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    cold: dict[str, float] = {}
    rss: dict[str, float] = {}
    for tracks in catalogs:
        with stack(f"serving-{tracks}") as s:
            root = s.run_dir / "artifacts"
            version = publish_random_space(root, tracks, users=1_000)
            publish_random_content(root, tracks, version)
            port = free_port()
            api = s.spawn(
                "api", [sys.executable, "-m", "encore.cli", "api"], ENCORE_API_PORT=str(port)
            )
            s.spawn("worker", [sys.executable, "-m", "encore.cli", "worker"])
            base = f"http://127.0.0.1:{port}"
            _wait(base)
            s.spawn(
                "events",
                [
                    sys.executable,
                    "-m",
                    "bench.loadgen",
                    "--bootstrap",
                    s.broker.address,
                    "--events",
                    "1000000",
                    "--rate",
                    "500",
                    "--per-record",
                    "50",
                    "--users",
                    "1000",
                    "--tracks",
                    str(tracks),
                ],
            )
            cold[str(tracks)] = cold_query_ms(base)
            for kind in ("personal", "query"):
                run_json(
                    [
                        "-m",
                        "bench.httpload",
                        "--base",
                        base,
                        "--rate",
                        "20",
                        "--seconds",
                        "2",
                        "--kind",
                        kind,
                    ]
                )  # warm up caches and connections
                for rate in rates:
                    r = run_json(
                        [
                            "-m",
                            "bench.httpload",
                            "--base",
                            base,
                            "--rate",
                            str(rate),
                            "--seconds",
                            str(seconds),
                            "--kind",
                            kind,
                        ]
                    )
                    rows.append({"catalog": tracks, **r, "drain_s": drained(base)})
            rss[str(tracks)] = group_memory_mib(api.pid)["rss_mib"]  # every API process
    return {
        "name": "serving",
        "machine": machine(),
        "params": {"seconds_per_rate": seconds, "background_events_per_s": 500, "query_texts": 18},
        "runs": rows,
        "api_rss_mib": rss,
        "cold_query_ms_median": cold,
        "goal": {"personal_p99_ms_at_200rps_100k": 25},
    }


def render(r: dict[str, Any]) -> str:
    rows = [
        [
            f"{x['catalog']:,}",
            x["kind"],
            x["rate"],
            x["achieved_rps"],
            x["p50_ms"],
            x["p95_ms"],
            x["p99_ms"],
            x["max_ms"],
            x["errors"],
        ]
        for x in r["runs"]
    ]
    cold = ", ".join(f"{k} tracks: {v} ms" for k, v in r["cold_query_ms_median"].items())
    return (
        table(
            rows,
            [
                "tracks",
                "route",
                "req/s",
                "achieved",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "errors",
            ],
        )
        + f"\n\nfirst (uncached) query: {cold}; API resident memory: "
        + ", ".join(f"{k} tracks: {v} MiB" for k, v in r["api_rss_mib"].items())
        + " (all API processes)"
    )


def main() -> None:
    seconds = float(os.environ.get("ENCORE_BENCH_SECONDS", "15"))
    result = run(seconds=seconds)
    path = save("serving", result)
    print(render(result))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
