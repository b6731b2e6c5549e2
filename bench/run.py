"""``encore bench``: run the named benchmarks (each writes bench/results/<name>.json)."""

from __future__ import annotations

import importlib

BENCHMARKS = ("stream", "freshness", "serving", "batch", "bandit")


def run_benchmarks(name: str = "all") -> None:
    """Run one benchmark or all of them, printing each table."""
    names = BENCHMARKS if name == "all" else (name,)
    for n in names:
        if n not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {n!r}; choose from {', '.join(BENCHMARKS)}")
        module = importlib.import_module(f"bench.{n}")
        print(f"## {n}\n", flush=True)
        module.main()
        print(flush=True)
