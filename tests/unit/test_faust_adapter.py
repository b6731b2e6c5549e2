"""The Faust internals :mod:`streams.faust_adapter` relies on, pinned: an upgrade of
faust-streaming, mode-streaming or aiokafka that moves or reshapes one fails here,
not in a running worker."""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import mode
import pytest
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.faust_adapter import PositionedApp, WatchdogWorker

ROOT = Path(__file__).resolve().parents[2]


def _pinned(package: str) -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        m = re.fullmatch(rf"{re.escape(package)}==([\w.]+)", dep.strip())
        if m:
            return m.group(1)
    raise AssertionError(f"{package} is not pinned exactly (==) in pyproject.toml")


@pytest.mark.parametrize("package", ["faust-streaming", "mode-streaming"])
def test_the_installed_version_is_the_pinned_one(package: str) -> None:
    assert version(package) == _pinned(package), (
        f"{package} {version(package)} is installed but the adapter was written for "
        f"{_pinned(package)}: check every internal listed in streams/faust_adapter.py"
    )


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_every_internal_has_the_expected_signature() -> None:
    consumer = faust_aiokafka.Consumer
    thread = faust_aiokafka.AIOKafkaConsumerThread
    assert _params(faust.App._new_consumer) == ["self"]
    assert _params(consumer.perform_seek) == ["self"]
    assert inspect.iscoroutinefunction(consumer.perform_seek)
    assert _params(consumer.seek_wait) == ["self", "partitions"]
    assert inspect.iscoroutinefunction(consumer.seek_wait)
    assert _params(thread._create_worker_consumer) == ["self", "transport"]
    assert _params(faust.Stream.noack_take) == ["self", "max_", "within"]
    assert inspect.isasyncgenfunction(inspect.unwrap(faust.Stream.noack_take))
    assert _params(faust.Stream.ack) == ["self", "event"]
    assert _params(mode.Worker._schedule_shutdown) == ["self", "signal"]
    assert faust.Worker._schedule_shutdown is mode.Worker._schedule_shutdown
    # aiokafka hands the attribute to its fetcher in start(), so setting it before works.
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


async def test_the_built_consumer_is_hooked_and_its_fetch_wait_shortened() -> None:
    app = PositionedApp(
        "adapter-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False
    )
    app.fetch_max_wait_ms = 37
    consumer: Any = app.consumer  # built by _new_consumer, not started
    assert isinstance(consumer, faust_aiokafka.Consumer)
    assert not inspect.ismethod(consumer.perform_seek)  # replaced on the instance
    assert inspect.iscoroutinefunction(consumer.perform_seek)
    thread = consumer._thread
    assert isinstance(thread, faust_aiokafka.AIOKafkaConsumerThread)
    kafka_consumer = thread._create_worker_consumer(app.transport)
    try:
        assert isinstance(kafka_consumer, AIOKafkaConsumer)
        assert kafka_consumer._fetch_max_wait_ms == 37
    finally:
        await kafka_consumer.stop()


async def test_perform_seek_seeks_to_the_looked_up_positions_after_faust(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tp = faust.types.TP("plays", 3)
    calls: list[Any] = []

    class Consumer:  # stands in for Faust's consumer: its seek, assignment and seek_wait
        _thread = SimpleNamespace(_create_worker_consumer=lambda transport: None)

        async def perform_seek(self) -> None:
            calls.append("faust")

        def assignment(self) -> set[Any]:
            return {tp}

        async def seek_wait(self, positions: Any) -> None:
            calls.append(("seek", dict(positions)))

    async def lookup(tps: list[Any]) -> dict[Any, int]:
        calls.append(("lookup", tps))
        return {tp: 42}

    monkeypatch.setattr(faust.App, "_new_consumer", lambda self: Consumer())
    app = PositionedApp("adapter-seek", broker="kafka://127.0.0.1:1", web_enabled=False)
    app.position_lookup = lookup
    await app._new_consumer().perform_seek()
    assert calls == ["faust", ("lookup", [tp]), ("seek", {tp: 42})]


def test_the_watchdog_worker_overrides_the_shutdown_path() -> None:
    assert WatchdogWorker._schedule_shutdown is not mode.Worker._schedule_shutdown
    assert _params(WatchdogWorker._schedule_shutdown) == ["self", "signal"]
