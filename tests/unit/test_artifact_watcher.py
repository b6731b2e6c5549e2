"""The artifact watcher's one policy: swap a good version, keep the old on a bad one and
say why, back off before loading a bad version again, try a new version at once, fall
back to an older version when nothing is served, and load off the event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from models.io.artifacts import Artifact, ArtifactStore, save_json
from models.io.watcher import ArtifactWatcher, Failure

KIND = "thing"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Served:
    """What a reader serves, and every load the watcher asked for."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.loads: list[str] = []
        self.threads: list[int] = []
        self.failures: list[Failure] = []

    def load(self, art: Artifact) -> dict[str, Any]:
        self.loads.append(art.version)
        self.threads.append(threading.get_ident())
        payload: dict[str, Any] = art.json("payload.json")
        if payload.get("bad"):
            raise ValueError(f"{art.path} is bad")
        return {"version": art.version, **payload}

    def version(self, kind: str) -> str | None:
        return None if self.obj is None else str(self.obj["version"])

    def swap(self, kind: str, version: str, obj: dict[str, Any]) -> None:
        assert obj["version"] == version
        self.obj = obj

    def refused(self, kind: str, failure: Failure) -> None:
        self.failures.append(failure)


def publish(store: ArtifactStore, version: str, *, bad: bool = False) -> str:
    path = store.stage(KIND, version)
    save_json(path, "payload.json", {"bad": bad})
    return store.publish(KIND, path)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[ArtifactStore, Served, Clock, ArtifactWatcher]:
    store = ArtifactStore(tmp_path / "artifacts", keep=10)
    served, clock = Served(), Clock()
    watcher = ArtifactWatcher(
        store,
        {KIND: served.load},
        served.version,
        served.swap,
        on_failure=served.refused,
        retry_s=2.0,
        retry_max_s=20.0,
        clock=clock,
    )
    return store, served, clock, watcher


Setup = tuple[ArtifactStore, Served, Clock, ArtifactWatcher]


async def test_swaps_in_a_new_version_and_leaves_it_alone_after(setup: Setup) -> None:
    store, served, _, watcher = setup
    assert await watcher.check() == []  # nothing published
    publish(store, "v1")
    assert await watcher.check() == [KIND]
    assert served.version(KIND) == "v1"
    publish(store, "v2")
    assert await watcher.check() == [KIND]
    assert served.version(KIND) == "v2"
    assert await watcher.check() == []
    assert served.loads == ["v1", "v2"]


async def test_polls_at_the_same_time_load_a_version_once(setup: Setup) -> None:
    store, served, _, watcher = setup
    publish(store, "v1")
    swapped = await asyncio.gather(watcher.check(), watcher.check(), watcher.check())
    assert sorted(swapped) == [[], [], [KIND]]
    assert served.loads == ["v1"]


async def test_keeps_the_old_on_a_bad_version_and_says_why(setup: Setup) -> None:
    store, served, _, watcher = setup
    publish(store, "v1")
    await watcher.check()
    publish(store, "v2", bad=True)
    assert await watcher.check() == []
    assert served.version(KIND) == "v1"
    failure = watcher.failures[KIND]
    assert (failure.version, failure.attempts) == ("v2", 1)
    assert failure.text == "<artifacts>/thing/v2 is bad"  # the store's location hidden
    assert str(failure).startswith("v2: ")
    assert served.failures == [failure]


async def test_a_bad_version_waits_out_a_growing_backoff(setup: Setup) -> None:
    store, served, clock, watcher = setup
    publish(store, "v1")
    await watcher.check()
    publish(store, "v2", bad=True)
    waits = []
    for attempt in range(1, 7):
        failed_at = clock.now
        await watcher.check()
        assert len(served.loads) == attempt + 1  # v1, then v2 once per attempt
        failure = watcher.failures[KIND]
        assert (failure.version, failure.attempts) == ("v2", attempt)
        waits.append(failure.retry_at - failed_at)
        clock.now = failure.retry_at - 0.01
        await watcher.check()
        await watcher.check()
        assert len(served.loads) == attempt + 1  # polls before the backoff load nothing
        clock.now = failure.retry_at
    assert waits == [4.0, 8.0, 16.0, 20.0, 20.0, 20.0]  # 2x from twice retry_s, capped
    assert served.version(KIND) == "v1"
    assert [f.attempts for f in served.failures] == [1, 2, 3, 4, 5, 6]


async def test_a_retried_version_that_loads_now_clears_its_failure(setup: Setup) -> None:
    store, served, clock, watcher = setup
    publish(store, "v1")
    await watcher.check()
    publish(store, "v2", bad=True)
    await watcher.check()
    save_json(store.root / KIND / "v2", "payload.json", {"bad": False})
    store.publish(KIND, store.root / KIND / "v2")  # the manifest's checksums match again
    clock.now = watcher.failures[KIND].retry_at
    assert await watcher.check() == [KIND]
    assert served.version(KIND) == "v2"
    assert KIND not in watcher.failures


async def test_a_newer_version_is_tried_at_once(setup: Setup) -> None:
    store, served, _, watcher = setup
    publish(store, "v1")
    await watcher.check()
    publish(store, "v2", bad=True)
    await watcher.check()
    publish(store, "v3")
    assert await watcher.check() == [KIND]  # no clock change: v3's load is not held back
    assert served.version(KIND) == "v3"
    assert served.loads == ["v1", "v2", "v3"]


async def test_falls_back_to_an_older_loadable_version_when_nothing_is_served(
    setup: Setup,
) -> None:
    store, served, clock, watcher = setup
    publish(store, "v1")
    publish(store, "v2", bad=True)
    publish(store, "v3", bad=True)
    assert await watcher.check() == [KIND]
    assert served.version(KIND) == "v1"  # v2 was tried and skipped too
    assert served.loads == ["v3", "v2", "v1"]
    assert watcher.failures[KIND].version == "v3"
    clock.now = watcher.failures[KIND].retry_at
    assert await watcher.check() == []  # v3 retried on its backoff; v1 kept
    assert served.loads == ["v3", "v2", "v1", "v3"]
    assert served.version(KIND) == "v1"


async def test_nothing_served_and_nothing_loads_keeps_nothing(setup: Setup) -> None:
    store, served, _, watcher = setup
    publish(store, "v1", bad=True)
    assert await watcher.check() == []
    assert served.obj is None
    assert watcher.failures[KIND].version == "v1"


async def test_loading_happens_off_the_event_loop(setup: Setup) -> None:
    store, served, _, watcher = setup
    publish(store, "v1")
    await watcher.check()
    assert served.threads
    assert threading.get_ident() not in served.threads


async def test_an_unexpected_error_does_not_stop_the_loop(tmp_path: Path) -> None:
    class Flaky(ArtifactWatcher):
        polls = 0

        async def check(self) -> list[str]:
            self.polls += 1
            if self.polls == 1:
                raise TypeError("a bug in a reader")
            if self.polls == 3:
                raise asyncio.CancelledError
            return []

    watcher = Flaky(ArtifactStore(tmp_path), {}, lambda kind: None, lambda *a: None)
    with pytest.raises(asyncio.CancelledError):
        await watcher.run(0.0)
    assert watcher.polls == 3  # the first poll's error was logged, and polling went on
