"""Where one API process's memory goes, step by step, at a given catalog size.

    python -m bench.apimemory [--tracks 100000]

In one process: the API's modules imported, then the artifacts of a catalog
(random ALS factors and content in the published formats, as ``bench.serving``
publishes them) loaded by the API's watcher with the item rows joined, then the
text model loaded. After each step, from ``/proc/self/smaps_rollup``: resident
memory, its anonymous part (private to the process: Python objects, arrays read
into memory, model weights) and its file-backed part (memory-mapped artifacts and
shared libraries, which several API processes share). Prints one JSON document
and a table; writes ``bench/results/apimemory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench.common import machine, publish_random_space, save, smaps_kib, table


def _memory() -> dict[str, int]:
    """Resident, anonymous and file-backed MiB of this process."""
    kib = smaps_kib()
    return {
        "rss_mib": kib["Rss"] // 1024,
        "anonymous_mib": kib["Anonymous"] // 1024,
        "file_backed_mib": (kib["Rss"] - kib["Anonymous"]) // 1024,
    }


def run(tracks: int) -> dict[str, Any]:
    steps = [{"step": "python", **_memory()}]
    from api.app import build_resources
    from api.bundle import BundleWatcher
    from bench.serving import publish_random_content
    from models.settings import ArtifactSettings, Settings

    steps.append({"step": "API modules imported", **_memory()})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "artifacts"
        publish_random_content(root, tracks, publish_random_space(root, tracks, users=1_000))
        gc.collect()
        res = build_resources(Settings(artifacts=ArtifactSettings(root=root)))

        async def load() -> None:
            await BundleWatcher(res, root, 3).check()

        asyncio.run(load())
        gc.collect()
        steps.append({"step": f"{tracks:,}-track artifacts loaded, item rows joined", **_memory()})
        objects = len(gc.get_objects()) + gc.get_freeze_count()  # the loader freezes them
        if res.embedder is not None and res.embedder.model.available():
            res.embedder.model.encode(["warm up"])
            gc.collect()
            steps.append({"step": "text model loaded (torch, all-MiniLM-L6-v2)", **_memory()})
    return {
        "name": "apimemory",
        "machine": machine(),
        "params": {"tracks": tracks},
        "objects_tracked_after_artifacts": objects,
        "steps": steps,
    }


def render(r: dict[str, Any]) -> str:
    rows = []
    prev: dict[str, Any] | None = None
    for s in r["steps"]:
        added = "" if prev is None else f"+{s['rss_mib'] - prev['rss_mib']:,}"
        rows.append(
            [s["step"], f"{s['rss_mib']:,}", added, f"{s['anonymous_mib']:,}", s["file_backed_mib"]]
        )
        prev = s
    head = ["step", "RSS MiB", "added", "anonymous MiB", "file-backed MiB"]
    return table(rows, head)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tracks", type=int, default=100_000)
    a = ap.parse_args()
    result = run(a.tracks)
    print(orjson.dumps(result).decode())
    print(render(result))
    print(save("apimemory", result))


if __name__ == "__main__":
    main()
