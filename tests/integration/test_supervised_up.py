"""Drill: a running ``encore up`` whose stream worker and API are SIGKILLed three times
each while events stream in. The supervisor restarts them; the stack stays up; every
event sent is reflected exactly once in Redis (counted per listener, as in
``bench/drills.py``); ``GET /v1/admin/status`` shows the restarts."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.drills import account, applied_counts, produce, settle
from bench.loadgen import synthetic
from encore.services import free_port

ADMIN = {"X-API-Key": "dev-admin-key"}


def _supervisor(run: Path) -> dict[str, dict[str, Any]]:
    try:
        raw = orjson.loads((run / "supervisor.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return {c["name"]: c for c in raw["children"]}


def _wait_for(check: Any, limit_s: float, what: str, out: list[str]) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {limit_s}s:\n" + "".join(out[-60:]))


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Up:
    """A running ``encore up`` (embedded broker and Redis, no demo) and its output."""

    proc: subprocess.Popen[str]
    run: Path
    url: str
    out: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    def text(self) -> str:
        return "".join(self.out)

    def wait_ready(self) -> None:
        _wait_for(
            lambda: self.ready.is_set() or self.proc.poll() is not None, 120, "ready", self.out
        )
        assert self.proc.poll() is None, "encore up exited early:\n" + self.text()

    def stop(self) -> None:
        """Ctrl-C, then wait for it to exit and for its output to end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=90)
        finally:
            if self.reader is not None:
                self.reader.join(timeout=5)


def _start_up(tmp_path: Path, **extra: str) -> Up:
    """Start ``encore up`` in its own run directory on a free port; a thread keeps its
    output drained (the supervisor logs every restart) and notes when it is ready."""
    run = tmp_path / "run"
    port = free_port()
    env = {
        **os.environ,
        "ENCORE_RUN_DIR": str(run),
        "ENCORE_ARTIFACTS_ROOT": str(tmp_path / "artifacts"),
        "ENCORE_API_PORT": str(port),
        "ENCORE_API_PROCESSES": "1",
        "ENCORE_RUN_DEMO": "false",
        "ENCORE_STREAM_EMBED_TEXT": "false",
        **extra,
    }
    for name in ("ENCORE_KAFKA_BOOTSTRAP", "ENCORE_REDIS_URL", "ENCORE_REDIS_CLUSTER"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "encore.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    up = Up(proc, run, f"http://127.0.0.1:{port}")

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            up.out.append(line)
            if line.startswith("ready."):
                up.ready.set()

    up.reader = threading.Thread(target=drain, daemon=True)
    up.reader.start()
    return up


def test_killed_worker_and_api_come_back_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    up = _start_up(tmp_path)
    run, url, out = up.run, up.url, up.out
    try:
        up.wait_ready()
        text = up.text()
        broker = re.search(r"broker +(\S+) \(embedded", text)
        redis_url = re.search(r"redis +(redis://\S+)", text)
        assert broker, text
        assert redis_url, text

        # spread over the past hour: none may be dead-lettered as dated in the future
        start = datetime.now(UTC) - timedelta(minutes=70)
        docs = synthetic(12_000, 500, 2_000, 13, start, prefix="supervised")
        sent = Counter(d["user_id"] for d in docs)
        chunks = [docs[i : i + 1_000] for i in range(0, len(docs), 1_000)]

        def stream() -> None:  # events keep arriving while the children are killed
            for chunk in chunks:
                asyncio.run(produce(broker.group(1), chunk))
                time.sleep(0.8)

        producer = threading.Thread(target=stream)
        producer.start()
        kills = {"worker-0": 0, "api": 0}
        for i in range(6):
            name = "worker-0" if i % 2 == 0 else "api"
            before = _supervisor(run)[name]
            assert before["state"] == "running", before
            os.kill(before["pid"], signal.SIGKILL)
            kills[name] += 1
            _wait_for(
                lambda n=name, k=kills[name]: (
                    _supervisor(run).get(n, {}).get("restarts") == k
                    and _supervisor(run)[n]["state"] == "running"
                ),
                30,
                f"{name} restart {kills[name]}",
                out,
            )
            if name == "api":
                _wait_for(lambda: _healthy(url), 60, "the restarted API", out)
            time.sleep(1.0)
        producer.join()

        asyncio.run(settle(redis_url.group(1), set(sent), len(docs), limit_s=90))
        got = asyncio.run(applied_counts(redis_url.group(1), set(sent)))
        result = account(sent, got)
        assert result == {
            "sent": len(docs),
            "applied_once": len(docs),
            "lost": 0,
            "applied_twice": 0,
        }, result

        assert up.proc.poll() is None, "encore up must stay up"
        status = httpx.get(url + "/v1/admin/status", headers=ADMIN, timeout=10).json()
        children = {c["name"]: c for c in status["supervisor"]["children"]}
        for name in ("worker-0", "api"):
            assert children[name]["restarts"] == 3, children[name]
            assert children[name]["state"] == "running"
            assert children[name]["last_exit"] == "signal SIGKILL"
        assert children["broker"]["restarts"] == 0
        assert children["broker"]["kind"] == "fatal"
        log = up.text()
        assert log.count("died (signal SIGKILL); restarting in") == 6, log
        print(  # the drill's outcome, for the CI log
            "drill:",
            result,
            {n: (children[n]["restarts"], children[n]["last_exit"]) for n in ("worker-0", "api")},
        )
    finally:
        up.stop()
    assert up.proc.returncode == 0, up.text()
    assert not (run / "supervisor.json").exists()


def test_the_embedded_broker_dying_stops_the_stack_with_a_clear_message(tmp_path: Path) -> None:
    up = _start_up(tmp_path)
    try:
        up.wait_ready()
        broker_pid = int((up.run / "pids" / "broker.pid").read_text())
        os.kill(broker_pid, signal.SIGKILL)
        up.proc.wait(timeout=90)
    finally:
        up.stop()
    rest = up.text()
    assert up.proc.returncode == 1, rest
    assert "broker" in rest
    assert "cannot be restarted without losing" in rest
    assert "stopped  redis" in rest
    assert list((up.run / "pids").glob("*.pid")) == []


def test_encore_up_on_an_embedded_redis_cluster(tmp_path: Path) -> None:
    up = _start_up(tmp_path, ENCORE_RUN_REDIS_CLUSTER_NODES="3")
    url = up.url
    pids: list[int] = []
    try:
        up.wait_ready()
        text = up.text()
        assert "embedded cluster of 3 masters" in text, text
        broker = re.search(r"broker +(\S+) \(embedded", text)
        redis_url = re.search(r"redis +(redis://\S+)", text)
        assert broker, text
        assert redis_url, text
        pids = [int(p) for p in re.findall(r"pids ([\d, ]+)\)", text)[0].split(", ")]
        assert len(pids) == 3

        start = datetime.now(UTC) - timedelta(minutes=70)
        docs = synthetic(3_000, 200, 1_000, 17, start, prefix="cluster")
        sent = Counter(d["user_id"] for d in docs)
        asyncio.run(produce(broker.group(1), docs))
        cluster_url = redis_url.group(1)
        asyncio.run(settle(cluster_url, set(sent), len(docs), limit_s=90, cluster=True))
        got = asyncio.run(applied_counts(cluster_url, set(sent), cluster=True))
        assert account(sent, got) == {
            "sent": len(docs),
            "applied_once": len(docs),
            "lost": 0,
            "applied_twice": 0,
        }
        user, n = sent.most_common(1)[0]
        recs = httpx.get(f"{url}/v1/users/{user}/recommendations", timeout=10).json()
        assert "redis_unavailable" not in recs["degraded_reasons"], recs
        assert recs["session"]["events"] == n  # the API reads the state from the cluster
    finally:
        up.stop()
    assert up.proc.returncode == 0, up.text()
    assert pids
    assert not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
