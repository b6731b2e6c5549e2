"""Keep ``encore up``'s long-running children alive: restart with backoff, give up on a loop.

The policy is a small class with the clock and the process starter passed in, so the
rules (when to restart, how long to wait, when to stop trying) are tested without
real processes. Three kinds of child:

* ``service``: restarted when it dies (stream workers, the API);
* ``job``: one-off (background training); its end is recorded, never restarted;
* ``fatal``: its death stops the whole stack (the embedded broker and Redis, whose
  memory cannot be restarted into a consistent state; see the README).

A service that dies more than ``max_restarts`` times within ``window_s`` seconds is
crash-looping: the supervisor gives up and ``encore up`` exits non-zero rather than
restart it forever. The wait before each restart doubles with every restart still
inside the window, from ``backoff_s`` up to ``backoff_max_s``.

The state of every child is written to ``supervisor.json`` in the run directory
(temp file, then rename) for ``GET /v1/admin/status``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import orjson

STATE_FILE = "supervisor.json"
"""Name of the state file inside the run directory (read by ``GET /v1/admin/status``)."""


class Kind(StrEnum):
    """How the supervisor treats a child's death."""

    SERVICE = "service"
    JOB = "job"
    FATAL = "fatal"


class Process(Protocol):
    """What the supervisor needs of a started process (``encore.services.Proc`` has it)."""

    name: str

    @property
    def pid(self) -> int: ...

    def exit_code(self) -> int | None: ...

    def tail(self, lines: int = 30) -> str: ...


@dataclass
class Child:
    """One supervised child: how to start it and what happened to it so far."""

    name: str
    kind: Kind
    start: Callable[[], Process]
    proc: Process | None = None
    state: str = "running"  # running | backoff | exited | failed
    restarts: int = 0
    last_exit: str | None = None
    last_exit_at: float | None = None
    last_restart_at: float | None = None
    next_start: float | None = None  # monotonic time of the pending restart
    recent: deque[float] = field(default_factory=deque)  # monotonic times of recent deaths

    def snapshot(self) -> dict[str, Any]:
        """The JSON form shown by the status route."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "pid": self.proc.pid if self.proc is not None else None,
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "last_restart_at": self.last_restart_at,
        }


def describe_exit(code: int) -> str:
    """``exit 3`` or ``signal SIGKILL`` (Popen gives a negative code for a signal)."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


class GiveUp(Exception):
    """The stack must stop: a fatal child died or a service keeps dying."""


class Supervisor:
    """Restart policy over a set of children; call :meth:`poll` in a loop.

    ``monotonic`` measures backoff and the crash window; ``wall`` stamps the times
    shown to operators; ``log`` receives one message per event (death, restart).
    """

    def __init__(
        self,
        *,
        backoff_s: float,
        backoff_max_s: float,
        max_restarts: int,
        window_s: float,
        monotonic: Callable[[], float],
        wall: Callable[[], float],
        log: Callable[[str], None],
        state_file: Path | None = None,
        reap: Callable[[int], None] | None = None,
    ) -> None:
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.monotonic = monotonic
        self.wall = wall
        self.log = log
        self.state_file = state_file
        self.reap = reap
        self.children: list[Child] = []

    def add(self, name: str, kind: Kind, start: Callable[[], Process]) -> Process:
        """Start a child now and supervise it from here on."""
        proc = start()
        self.children.append(Child(name, kind, start, proc))
        self.save()
        return proc

    def adopt(self, proc: Process, kind: Kind, start: Callable[[], Process] | None = None) -> None:
        """Supervise a process started elsewhere (the broker and Redis, started first)."""

        def cannot() -> Process:
            raise GiveUp(f"{proc.name} cannot be restarted")

        self.children.append(Child(proc.name, kind, start or cannot, proc))
        self.save()

    def poll(self) -> None:
        """Notice deaths and perform due restarts; raises :class:`GiveUp` to stop the stack."""
        changed = False
        for child in self.children:
            if child.state == "running" and child.proc is not None:
                code = child.proc.exit_code()
                if code is not None:
                    changed = True
                    self._died(child, child.proc, code)
            due = child.next_start is not None and self.monotonic() >= child.next_start
            if child.state == "backoff" and due:
                changed = True
                self._restart(child)
        if changed:
            self.save()

    def _died(self, child: Child, proc: Process, code: int) -> None:
        now = self.monotonic()
        child.last_exit = describe_exit(code)
        child.last_exit_at = self.wall()
        if self.reap is not None:  # leftovers in its process group (the API's workers)
            self.reap(proc.pid)
        if child.kind is Kind.JOB:
            child.state = "exited"
            self.log(f"{child.name} (pid {proc.pid}) finished: {child.last_exit}")
            return
        tail = proc.tail()
        if child.kind is Kind.FATAL:
            child.state = "failed"
            self.save()
            raise GiveUp(
                f"{child.name} (pid {proc.pid}) died ({child.last_exit}); it cannot be "
                f"restarted without losing what it held, so the stack stops.\n{tail}"
            )
        delay = self._schedule(child, now, f"{child.name} (pid {proc.pid}) died")
        self.log(
            f"{child.name} (pid {proc.pid}) died ({child.last_exit}); restarting in "
            f"{delay:g}s. Last log lines:\n{tail}"
        )

    def _schedule(self, child: Child, now: float, what: str) -> float:
        """Count a death in the window; schedule the restart or give up. Returns the delay."""
        while child.recent and now - child.recent[0] > self.window_s:
            child.recent.popleft()
        child.recent.append(now)
        if len(child.recent) > self.max_restarts:
            child.state = "failed"
            self.save()
            raise GiveUp(
                f"{what} ({child.last_exit}) {len(child.recent)} times within "
                f"{self.window_s:g}s; giving up.\n{child.proc.tail() if child.proc else ''}"
            )
        delay = min(self.backoff_s * 2.0 ** (len(child.recent) - 1), self.backoff_max_s)
        child.state = "backoff"
        child.next_start = now + delay
        return delay

    def _restart(self, child: Child) -> None:
        child.next_start = None
        try:
            proc = child.start()
        except GiveUp:
            child.state = "failed"
            raise
        except Exception as exc:  # noqa: BLE001 - a failed start counts as a death
            child.last_exit = f"start failed: {type(exc).__name__}: {exc}"
            child.last_exit_at = self.wall()
            delay = self._schedule(child, self.monotonic(), f"{child.name} failed to start")
            self.log(f"{child.name} could not be started ({exc}); retrying in {delay:g}s")
            return
        child.proc = proc
        child.state = "running"
        child.restarts += 1
        child.last_restart_at = self.wall()
        self.log(f"{child.name} restarted (pid {proc.pid}, restart {child.restarts})")

    def running(self) -> list[Process]:
        """Every child process currently started, in the order they were added."""
        return [c.proc for c in self.children if c.proc is not None]

    def snapshot(self) -> dict[str, Any]:
        """The whole state as written to the state file."""
        return {
            "pid": os.getpid(),
            "updated_at": self.wall(),
            "policy": {
                "backoff_s": self.backoff_s,
                "backoff_max_s": self.backoff_max_s,
                "max_restarts": self.max_restarts,
                "window_s": self.window_s,
            },
            "children": [c.snapshot() for c in self.children],
        }

    def save(self) -> None:
        """Write the state file atomically (temp file, then rename over the old one)."""
        if self.state_file is None:
            return
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(self.snapshot(), option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.state_file)

    def remove_state(self) -> None:
        """Delete the state file (the stack has stopped)."""
        if self.state_file is not None:
            with contextlib.suppress(OSError):
                self.state_file.unlink()
