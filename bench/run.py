"""``encore bench``: run the named benchmarks (each writes bench/results/<name>.json)."""

from __future__ import annotations

import importlib

BENCHMARKS = ("stream", "freshness", "serving", "batch", "bandit")


def run_benchmarks(name: str = "all", only: str | None = None) -> None:
    """Run one benchmark or all of them, printing each table; ``only`` names one part of
    the ``batch`` benchmark (e.g. ``audio``), to measure it without the long training parts."""
    if only is not None and name != "batch":
        raise SystemExit("--only applies to the batch benchmark")
    names = BENCHMARKS if name == "all" else (name,)
    for n in names:
        if n not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {n!r}; choose from {', '.join(BENCHMARKS)}")
        module = importlib.import_module(f"bench.{n}")
        print(f"## {n}\n", flush=True)
        module.main(only) if only is not None else module.main()
        print(flush=True)
