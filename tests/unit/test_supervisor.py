"""The restart policy of ``encore up`` without real processes: a fake clock and fake
children whose deaths the test decides."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from encore.supervisor import GiveUp, Kind, Supervisor, describe_exit


class FakeProc:
    """A started child; ``code`` is None while it runs."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self._pid = pid
        self.code: int | None = None

    @property
    def pid(self) -> int:
        return self._pid

    def exit_code(self) -> int | None:
        return self.code

    def tail(self, lines: int = 30) -> str:
        return f"last words of {self.name}"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A supervisor over fake processes, with every start and message recorded."""

    def __init__(self, tmp_path: Path, max_restarts: int = 3, window_s: float = 60.0) -> None:
        self.clock = Clock()
        self.messages: list[str] = []
        self.started: list[FakeProc] = []
        self.reaped: list[int] = []
        self.sup = Supervisor(
            backoff_s=0.5,
            backoff_max_s=3.0,
            max_restarts=max_restarts,
            window_s=window_s,
            monotonic=self.clock,
            wall=lambda: 1_700_000_000.0 + self.clock.now,
            log=self.messages.append,
            state_file=tmp_path / "supervisor.json",
            reap=self.reaped.append,
        )

    def starter(self, name: str) -> FakeProc:
        proc = FakeProc(name, 1000 + len(self.started))
        self.started.append(proc)
        return proc

    def current(self, name: str) -> FakeProc:
        return [p for p in self.started if p.name == name][-1]

    def at(self, t: float) -> None:
        self.clock.now = t
        self.sup.poll()

    def state(self) -> dict[str, dict[str, object]]:
        raw = orjson.loads(self.sup.state_file.read_bytes())  # type: ignore[union-attr]
        return {c["name"]: c for c in raw["children"]}


def test_a_dead_service_is_restarted_after_a_doubling_backoff(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_restarts=5)
    h.sup.add("worker-0", Kind.SERVICE, lambda: h.starter("worker-0"))
    delays = []
    for _ in range(4):
        died_at = h.clock.now
        h.current("worker-0").code = -signal.SIGKILL
        h.at(died_at)
        assert h.state()["worker-0"]["state"] == "backoff"
        n = len(h.started)
        t = died_at
        while len(h.started) == n:  # step the clock until the restart happens
            t = round(t + 0.25, 2)
            h.at(t)
        delays.append(t - died_at)
    assert delays == [0.5, 1.0, 2.0, 3.0]  # doubling, capped at backoff_max_s
    s = h.state()["worker-0"]
    assert s["state"] == "running"
    assert s["restarts"] == 4
    assert s["pid"] == h.current("worker-0").pid
    assert s["last_exit"] == "signal SIGKILL"
    assert s["last_restart_at"] is not None
    assert h.reaped == [p.pid for p in h.started[:-1]]  # each dead child's group reaped
    died = [m for m in h.messages if "died" in m]
    assert "signal SIGKILL" in died[0]
    assert "last words of worker-0" in died[0]


def test_a_child_that_keeps_dying_stops_the_stack(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_restarts=2, window_s=60.0)
    h.sup.add("api", Kind.SERVICE, lambda: h.starter("api"))
    for _ in range(2):
        h.current("api").code = 1
        h.at(h.clock.now + 1)
        h.at(h.clock.now + 10)  # past any backoff: restarted
    assert h.state()["api"]["restarts"] == 2
    h.current("api").code = 1
    with pytest.raises(GiveUp, match=r"api .* \(exit 1\) 3 times within 60s"):
        h.at(h.clock.now + 1)
    assert h.state()["api"]["state"] == "failed"


def test_deaths_outside_the_window_are_forgiven(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_restarts=2, window_s=60.0)
    h.sup.add("api", Kind.SERVICE, lambda: h.starter("api"))
    for _ in range(6):  # one death every 40 s: never more than 2 within 60 s
        h.current("api").code = 1
        h.at(h.clock.now + 40)
        h.at(h.clock.now + 5)
    assert h.state()["api"]["restarts"] == 6
    assert h.state()["api"]["state"] == "running"


def test_a_finished_job_is_recorded_not_restarted(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    job = FakeProc("train", 42)
    h.sup.adopt(job, Kind.JOB)
    job.code = 0
    h.at(h.clock.now + 1)
    h.at(h.clock.now + 100)
    s = h.state()["train"]
    assert (s["state"], s["restarts"], s["last_exit"]) == ("exited", 0, "exit 0")
    assert h.started == []


def test_the_embedded_broker_dying_stops_the_stack(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    broker = FakeProc("broker", 7)
    h.sup.adopt(broker, Kind.FATAL)
    h.sup.add("worker-0", Kind.SERVICE, lambda: h.starter("worker-0"))
    broker.code = -signal.SIGKILL
    with pytest.raises(GiveUp, match=r"broker .* cannot be restarted without losing"):
        h.at(h.clock.now + 1)
    assert h.state()["broker"]["state"] == "failed"


def test_a_failed_start_counts_as_a_death(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_restarts=2)
    failing = {"on": False}

    def start() -> FakeProc:
        if failing["on"]:
            raise OSError("no such file")
        return h.starter("worker-0")

    h.sup.add("worker-0", Kind.SERVICE, start)
    failing["on"] = True
    h.current("worker-0").code = 1
    h.at(h.clock.now)
    h.at(h.clock.now + 1)  # the restart fails: second death in the window
    assert h.state()["worker-0"]["state"] == "backoff"
    assert "start failed" in str(h.state()["worker-0"]["last_exit"])
    with pytest.raises(GiveUp):
        h.at(h.clock.now + 5)  # fails again: third, over the limit of 2


def test_the_state_file_is_replaced_whole(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sup.add("worker-0", Kind.SERVICE, lambda: h.starter("worker-0"))
    raw = orjson.loads((tmp_path / "supervisor.json").read_bytes())
    assert raw["policy"] == {
        "backoff_s": 0.5,
        "backoff_max_s": 3.0,
        "max_restarts": 3,
        "window_s": 60.0,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["supervisor.json"]  # no temp left
    h.sup.remove_state()
    assert not (tmp_path / "supervisor.json").exists()


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(3) == "exit 3"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(-200) == "signal 200"


def test_the_status_route_shows_a_live_supervisor_only(tmp_path: Path) -> None:
    import os

    from api.routes.admin import SUPERVISOR_FILE, supervisor_state
    from encore.supervisor import STATE_FILE

    assert SUPERVISOR_FILE == STATE_FILE
    assert supervisor_state(tmp_path) is None  # not under encore up
    h = Harness(tmp_path)
    h.sup.add("worker-0", Kind.SERVICE, lambda: h.starter("worker-0"))
    state = supervisor_state(tmp_path)
    assert state is not None
    assert state["pid"] == os.getpid()
    assert [c["name"] for c in state["children"]] == ["worker-0"]
    raw = orjson.loads((tmp_path / STATE_FILE).read_bytes())
    raw["pid"] = 2**22 + 1  # above pid_max: a supervisor that is gone
    (tmp_path / STATE_FILE).write_bytes(orjson.dumps(raw))
    assert supervisor_state(tmp_path) is None
    (tmp_path / STATE_FILE).write_bytes(b"{half")
    assert supervisor_state(tmp_path) is None
