"""``encore up``: the whole system in one command.

With no ``ENCORE_KAFKA_BOOTSTRAP`` / ``ENCORE_REDIS_URL`` it starts the embedded
broker and a Redis server on free loopback ports; then it creates the topics,
starts the stream workers and the API (``ENCORE_API_PROCESSES`` processes on one
port) as child processes, loads the demo
catalog into an empty system, and supervises them (:mod:`encore.supervisor`): a
worker or the API that dies is restarted with backoff; the embedded broker or
Redis dying, or a child that keeps dying, stops the stack with exit code 1.
Ctrl-C (or SIGTERM) stops everything it started, in reverse order, by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from encore.services import (
    Proc,
    ServiceError,
    create_topics,
    spawn,
    start_broker,
    start_redis,
    start_redis_cluster,
)
from encore.supervisor import STATE_FILE, GiveUp, Kind, Supervisor
from models.settings import Settings
from models.topics import all_topics


class Stack:
    """Processes started by ``encore up``, supervised, stopped in reverse order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = Path(settings.run.dir).resolve()
        self.procs: list[Proc] = []  # infrastructure we started (broker, Redis)
        self.env: dict[str, str] = {"ENCORE_RUN_DIR": str(self.run_dir)}
        self.embedded_broker = False
        self.jobs: list[Proc] = []  # one-off processes (training): may end on their own
        self.apps: dict[str, Proc] = {}  # the current process of each supervised app
        r = settings.run
        self.supervisor = Supervisor(
            backoff_s=r.restart_backoff_s,
            backoff_max_s=r.restart_backoff_max_s,
            max_restarts=r.max_restarts,
            window_s=r.restart_window_s,
            monotonic=time.monotonic,
            wall=time.time,
            log=_log,
            state_file=self.run_dir / STATE_FILE,
            reap=_reap_group,
        )

    def start_infra(self) -> None:
        """Start (or adopt) the broker and Redis."""
        s = self.settings
        if s.kafka.bootstrap:
            self.env["ENCORE_KAFKA_BOOTSTRAP"] = s.kafka.bootstrap
        else:
            broker = start_broker(self.run_dir, binary=s.run.tansu_bin)
            self.procs.append(broker)
            self.supervisor.adopt(broker, Kind.FATAL)
            self.embedded_broker = True
            self.env["ENCORE_KAFKA_BOOTSTRAP"] = s.kafka.bootstrap = broker.address
            print(f"broker   {broker.address} (embedded, memory storage, pid {broker.pid})")
        if s.redis.url:
            self.env["ENCORE_REDIS_URL"] = s.redis.url.get_secret_value()
        else:
            from pydantic import SecretStr

            if s.run.redis_cluster_nodes:
                cluster = start_redis_cluster(
                    self.run_dir, nodes=s.run.redis_cluster_nodes, binary=s.run.redis_bin
                )
                for node in cluster.nodes:
                    self.procs.append(node)
                    self.supervisor.adopt(node, Kind.FATAL)
                address = cluster.address
                s.redis.cluster = True
                self.env["ENCORE_REDIS_CLUSTER"] = "true"
                pids = ", ".join(str(n.pid) for n in cluster.nodes)
                print(
                    f"redis    {address} (embedded cluster of {len(cluster.nodes)} masters, "
                    f"pids {pids})"
                )
            else:
                redis = start_redis(self.run_dir, binary=s.run.redis_bin)
                self.procs.append(redis)
                self.supervisor.adopt(redis, Kind.FATAL)
                address = redis.address
                print(f"redis    {address} (embedded, pid {redis.pid})")
            self.env["ENCORE_REDIS_URL"] = address
            s.redis.url = SecretStr(address)
        made = asyncio.run(
            create_topics(
                self.env["ENCORE_KAFKA_BOOTSTRAP"],
                all_topics(),
                s.kafka.partitions,
                s.kafka.replication_factor,
            )
        )
        if made:
            print(f"topics   created {', '.join(made)}")

    def start_apps(self) -> str:
        """Start workers and the API; returns the API base URL once it answers."""
        s = self.settings
        env = {**self.env, "ENCORE_ARTIFACTS_ROOT": str(Path(s.artifacts.root).resolve())}
        exe = [sys.executable, "-m", "encore.cli"]
        for i in range(s.run.workers):
            self._supervise(f"worker-{i}", [*exe, "worker"], env)
        port = s.api.port or _free()
        env["ENCORE_API_PORT"] = str(port)
        if s.api.processes is not None:
            env["ENCORE_API_PROCESSES"] = str(s.api.processes)
        api = self._supervise("api", [*exe, "api"], env)
        url = f"http://{s.api.host}:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not api.alive():
                raise ServiceError(f"the API exited:\n{api.tail()}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ServiceError(f"the API did not answer on {url}:\n{api.tail()}")

    def _supervise(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        """Start a long-running child that the supervisor restarts when it dies."""

        def start() -> Proc:
            proc = spawn(name, argv, self.run_dir, env=env)
            self.apps[name] = proc
            return proc

        self.supervisor.add(name, Kind.SERVICE, start)
        return self.apps[name]

    def train_if_missing(self) -> None:
        """Train the models from the event log in the background if none are published."""
        from models.io.artifacts import ArtifactStore

        root = Path(self.settings.artifacts.root).resolve()
        if ArtifactStore(root).current_version("als") is not None:
            return
        env = {**self.env, "ENCORE_ARTIFACTS_ROOT": str(root)}
        job = spawn(
            "train",
            [sys.executable, "-m", "encore.cli", "train", "all", "--source", "events"],
            self.run_dir,
            env=env,
        )
        self.jobs.append(job)
        self.supervisor.adopt(job, Kind.JOB)
        print(
            f"models   training on the event log in the background (pid {job.pid}, log "
            f"{job.log}); the API swaps them in when published"
        )

    def stop(self) -> None:
        """Stop every process we started, newest first."""
        for job in self.jobs:
            if job.alive():
                job.stop()
        for proc in [*reversed(self.apps.values()), *reversed(self.procs)]:
            code = proc.stop()
            if proc.name == "api":
                _reap_group(proc.pid)
            print(f"stopped  {proc.name} (pid {proc.pid}, exit {code})")
        self.apps.clear()
        self.procs.clear()
        self.supervisor.remove_state()

    def watch(self) -> int:
        """Supervise until a signal or a give-up; returns the exit code for ``encore up``."""
        stopping = {"signal": 0}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            stopping["signal"] = signum

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stopping["signal"]:
            try:
                self.supervisor.poll()
            except GiveUp as exc:
                print(f"encore up: stopping: {exc}", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.2)
        return 0


def _log(message: str) -> None:
    """Supervisor messages go to stderr, one timestamped entry each."""
    print(f"{time.strftime('%H:%M:%S')} supervise {message}", file=sys.stderr, flush=True)


def _reap_group(pgid: int) -> None:
    """Kill what is left of a stopped child's process group (the API's worker processes,
    should its supervisor have been killed before it could stop them)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _free() -> int:
    from encore.services import free_port

    return free_port()


def run_stack(settings: Settings) -> int:
    """Run until Ctrl-C; returns the process exit code."""
    stack = Stack(settings)
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        stack.start_infra()
        if settings.run.demo:
            _load_demo(settings, fresh_broker=stack.embedded_broker)
        url = stack.start_apps()
        stack.train_if_missing()
        print(f"api      {url}  (docs {url}/docs, health {url}/healthz)")
        print(f"logs     {stack.run_dir / 'logs'}")
        print("ready. Ctrl-C stops everything.", flush=True)
        return stack.watch()
    except ServiceError as exc:
        print(f"encore up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()


def _load_demo(settings: Settings, *, fresh_broker: bool) -> None:
    """Send the demo catalog to an empty broker (an external one gets it once)."""
    from encore.loading import load_dataset

    marker = Path(settings.run.dir) / "demo-loaded"
    if not fresh_broker and marker.exists():
        return
    n_tracks, n_events = asyncio.run(load_dataset(settings, "demo", None, progress=False))
    marker.write_text(f"{n_tracks} {n_events}\n")
    print(f"demo     {n_tracks} tracks, {n_events} interactions sent to the topics")
