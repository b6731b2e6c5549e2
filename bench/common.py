"""Shared benchmark plumbing: the embedded stack, machine facts, results and tables."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from encore.services import Proc, _run_sync, create_topics, spawn, start_broker, start_redis
from models.io.artifacts import ArtifactStore, save_array, save_json
from models.topics import all_topics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass
class Stack:
    """Broker and Redis for one benchmark (fresh, on free ports)."""

    run_dir: Path
    broker: Proc
    redis: Proc
    partitions: int = 6
    procs: list[Proc] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "ENCORE_KAFKA_BOOTSTRAP": self.broker.address,
            "ENCORE_REDIS_URL": self.redis.address,
            "ENCORE_KAFKA_PARTITIONS": str(self.partitions),
            "ENCORE_RUN_DIR": str(self.run_dir),
            "ENCORE_ARTIFACTS_ROOT": str(self.run_dir / "artifacts"),
            "ENCORE_STREAM_EMBED_TEXT": "false",
            **extra,
        }

    def spawn(self, name: str, argv: Sequence[str], **extra: str) -> Proc:
        proc = spawn(name, argv, self.run_dir, env=self.env(**extra))
        self.procs.append(proc)
        return proc


@contextmanager
def stack(name: str, partitions: int = 6) -> Iterator[Stack]:
    """A fresh embedded broker and Redis under ``var/bench/<name>``; stopped by PID after."""
    run_dir = ROOT / "var" / "bench" / f"{name}-{int(time.time())}"
    run_dir.mkdir(parents=True, exist_ok=True)
    broker = start_broker(run_dir)
    redis = start_redis(run_dir)
    s = Stack(run_dir, broker, redis, partitions)
    try:
        _run_sync(lambda: create_topics(broker.address, all_topics(), partitions))
        yield s
    finally:
        for p in reversed(s.procs):
            p.stop()
        s.redis.stop()  # the current ones: a drill may have replaced them
        s.broker.stop()


def publish_random_space(
    root: Path, tracks: int, dim: int = 64, users: int = 1_000, seed: int = 0
) -> str:
    """An "als" artifact with random factors (for measuring the fold, not quality)."""
    rng = np.random.default_rng(seed)
    store = ArtifactStore(root)
    path = store.stage("als")
    save_json(path, "item_ids.json", [f"t{i}" for i in range(tracks)])
    save_array(path, "item_factors", rng.normal(size=(tracks, dim)).astype(np.float32))
    save_json(path, "user_ids.json", [f"u{i}" for i in range(users)])
    save_array(path, "user_factors", rng.normal(size=(users, dim)).astype(np.float32))
    save_array(path, "popularity", (1.0 / np.arange(1, tracks + 1)).astype(np.float32))
    save_json(path, "item_artists.json", [f"a{i % (tracks // 10 + 1)}" for i in range(tracks)])
    import faiss

    from models.index import build_index

    items = np.load(path / "item_factors.npy")
    faiss.write_index(build_index(items), str(path / "index.faiss"))
    return store.publish("als", path, params={"synthetic": True})


def run_json(argv: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a process that prints one JSON line; return it."""
    out = subprocess.run(
        [sys.executable, *argv],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def loadgen(bootstrap: str, events: int, users: int, tracks: int, *extra: str) -> dict[str, Any]:
    """Run the load generator (:mod:`bench.loadgen`) as its own process; its summary."""
    return run_json(
        [
            "-m",
            "bench.loadgen",
            "--bootstrap",
            bootstrap,
            "--events",
            str(events),
            "--users",
            str(users),
            "--tracks",
            str(tracks),
            *extra,
        ]
    )


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of a sample."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    q = np.percentile(np.asarray(values), [50, 95, 99])
    return {
        "p50": round(float(q[0]), 2),
        "p95": round(float(q[1]), 2),
        "p99": round(float(q[2]), 2),
        "max": round(float(max(values)), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def smaps_kib(pid: int | str = "self") -> dict[str, int]:
    """A process's memory totals from ``/proc/<pid>/smaps_rollup`` (kB fields: Rss, Pss,
    Anonymous, ...); empty when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines()[1:]:
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            out[key] = int(value.split()[0])
    return out


def save(name: str, result: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
