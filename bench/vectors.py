"""Vector backends side by side: build time, single-query latency, recall@10, memory.

``python -m bench.vectors --n 100000 [--n 1000000] --dim 64``. Each backend runs in a
process of its own (so its memory is its own): it generates the same seeded
vectors, builds its store through :class:`models.vectors.VectorStore` ``add``, then
answers 1,000 single queries (k=10) one at a time. Recall@10 is against exact
search. Memory is the growth of RSS over the build, summed over the process and
its children (Milvus Lite runs its server as a child process).

The vectors are embedding-like rather than uniform: 1,000 Gaussian clusters plus
noise, unit length, queries drawn the same way (not rows of the data). Backends:
FAISS through the index factory (``auto``: HNSW up to 300k vectors, IVF-PQ above),
Milvus Lite with FLAT (the default, exact), and with IVF_FLAT to show what Milvus
Lite's approximate index gives.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, machine, run_json, save, table
from bench.hotpaths import group_memory_mib
from models.vectors import VectorStore, exact_search, recall_at_k

BACKENDS = ("faiss", "milvus-flat", "milvus-ivf_flat")
QUERIES = 1_000


def data(n: int, dim: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Ids, vectors and queries (see the module)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1_000, dim)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        x = centres[rng.integers(0, len(centres), m)] + 0.6 * rng.normal(size=(m, dim))
        return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), np.float32)

    return [f"t{i}" for i in range(n)], draw(n), draw(QUERIES)


def make(backend: str, dim: int, tmp: Path) -> VectorStore:
    if backend == "faiss":
        from models.io.vectors_faiss import FaissStore

        return FaissStore(dim)
    from models.io.vectors_milvus import MilvusStore, connect

    return MilvusStore(connect(str(tmp / "bench.db")), "bench", dim, backend.split("-")[1].upper())


def worker(backend: str, n: int, dim: int) -> dict[str, Any]:
    """One backend's numbers (run in its own process)."""
    ids, x, q = data(n, dim)
    genres = [("jazz", "rock", "folk", "pop")[i % 4] for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        before = group_memory_mib(os.getpid())["rss_mib"]
        t0 = time.perf_counter()
        store = make(backend, dim, Path(tmp))
        store.add(ids, x, {"genre": genres})
        store.search(q[:1], 10)  # ready to answer: Milvus loads and indexes on first use
        build_s = time.perf_counter() - t0
        times, found = [], []
        for i in range(QUERIES):
            t = time.perf_counter()
            found += store.search(q[i : i + 1], 10)
            times.append((time.perf_counter() - t) * 1000)
        memory = group_memory_mib(os.getpid())["rss_mib"] - before
        assert store.count() == n
    recall = recall_at_k(found, exact_search(ids, x, q, 10), 10)
    return {
        "backend": backend,
        "n": n,
        "dim": dim,
        "build_s": round(build_s, 1),
        "query_p50_ms": round(float(np.percentile(times, 50)), 2),
        "query_p99_ms": round(float(np.percentile(times, 99)), 2),
        "recall_at_10": round(recall, 4),
        "memory_mib": round(memory, 1),
    }


def _key(run: dict[str, Any]) -> tuple[str, int, int]:
    return run["backend"], run["n"], run["dim"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="vectors (repeatable)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = args.n or [100_000]
    if args.worker:
        print(json.dumps(worker(args.worker, sizes[0], args.dim)), flush=True)
        return
    here = machine()
    runs = []
    for n in sizes:
        for backend in args.backend or BACKENDS:
            argv = ["-m", "bench.vectors", "--worker", backend, "--n", str(n)]
            run = run_json([*argv, "--dim", str(args.dim)])
            run["load_avg_at_start"] = here["load_avg_at_start"]
            print(json.dumps(run), file=sys.stderr, flush=True)
            runs.append(run)
    # sizes run separately accumulate: a run replaces only the same backend, n and dim
    path = RESULTS / "vectors.json"
    old = json.loads(path.read_text())["runs"] if path.is_file() else []
    fresh = {_key(r) for r in runs}
    runs = sorted([r for r in old if _key(r) not in fresh] + runs, key=lambda r: (r["n"], r["dim"]))
    result: dict[str, Any] = {"machine": here, "runs": runs}
    save("vectors", result)
    header = ["backend", "n", "dim", "build_s", "query_p50_ms", "query_p99_ms",
              "recall_at_10", "memory_mib"]  # fmt: skip
    print(json.dumps(result, indent=2))
    print(table([[r[h] for h in header] for r in result["runs"]], header))


if __name__ == "__main__":
    main()
