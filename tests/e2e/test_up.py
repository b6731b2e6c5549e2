"""`encore up` from nothing: the whole stack starts (the API as two processes on one
port), serves /healthz, applies the demo, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from encore.services import free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited; only our own children could be zombies here
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(stat.parent.name))
    return out


def test_encore_up_serves_applies_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ENCORE_RUN_DIR": str(tmp_path / "run"),
        "ENCORE_ARTIFACTS_ROOT": str(tmp_path / "artifacts"),
        "ENCORE_API_PORT": str(port),
        "ENCORE_API_PROCESSES": "2",
    }
    env.pop("ENCORE_KAFKA_BOOTSTRAP", None)
    env.pop("ENCORE_REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "encore.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "encore up exited early:\n" + "".join(lines)
            lines.append(line)
            if line.startswith("ready."):
                break
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}" in out
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}

        redis_url = re.search(r"redis +(redis://\S+)", out)
        assert redis_url, out
        client = redis.Redis.from_url(redis_url.group(1))
        deadline = time.monotonic() + 120
        users = 0
        while time.monotonic() < deadline:  # the worker folds the demo history into Redis
            users = sum(1 for _ in client.scan_iter("enc:g0:us:*", count=1000))
            if users == 300:
                break
            time.sleep(1)
        assert users == 300
        # the demo models train in the background; each of the two API processes loads
        # them on its own poll, so ready means ready on many fresh connections in a row
        deadline = time.monotonic() + 240
        in_a_row = 0
        while time.monotonic() < deadline and in_a_row < 12:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
            in_a_row = in_a_row + 1 if ready else 0
            time.sleep(0.25 if ready else 2)
        assert in_a_row == 12, "the API processes did not all load the demo models"
        assert proc.poll() is None, "encore up must stay up"
        recs = httpx.get(
            f"http://127.0.0.1:{port}/v1/users/demo:u1/recommendations", timeout=10
        ).json()
        assert recs["model_versions"]["als"] is not None
        assert recs["degraded"] is False
        assert len(recs["items"]) == 20
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        names = {p.stem for p in (tmp_path / "run" / "pids").glob("*.pid")}
        assert (
            {"broker", "redis", "worker-0", "api"}
            <= names
            <= {"broker", "redis", "worker-0", "api", "train"}
        )
        pids = [int(p.read_text()) for p in (tmp_path / "run" / "pids").glob("*.pid")]
        api_pid = int((tmp_path / "run" / "pids" / "api.pid").read_text())
        api_children = _children(api_pid)
        assert len(api_children) >= 2, api_children  # the two API worker processes
        pids += api_children
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, rest
    assert "stopped  broker" in rest
    assert not any(_alive(pid) for pid in pids)
    assert list((tmp_path / "run" / "pids").glob("*.pid")) == []
