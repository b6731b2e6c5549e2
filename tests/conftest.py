"""Session fixtures: a real Kafka-protocol broker, a real redis-server, a real
three-master Redis Cluster and an S3-compatible server (moto's) on free loopback
ports, started once per test session and stopped by PID (moto's: by its handle)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from encore.services import (
    LocalRedisCluster,
    Proc,
    free_port,
    start_broker,
    start_redis,
    start_redis_cluster,
)

ROOT = Path(__file__).resolve().parent.parent
LASTFM_DIR = ROOT.parent / "shared" / "datasets" / "hetrec2011-lastfm-2k"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run directory for every service the session starts."""
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def broker(run_dir: Path) -> Iterator[Proc]:
    """The embedded broker (tansu, memory storage); ``.address`` is its bootstrap."""
    proc = start_broker(run_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def redis_server(run_dir: Path) -> Iterator[Proc]:
    """A real redis-server; ``.address`` is its URL."""
    proc = start_redis(run_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def redis_cluster(run_dir: Path) -> Iterator[LocalRedisCluster]:
    """A real Redis Cluster of three masters (no replicas, no persistence), formed and
    ``cluster_state:ok``; ``.address`` is one node's URL, for the cluster client."""
    cluster = start_redis_cluster(run_dir, nodes=3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server; its endpoint URL. The AWS variables boto3 reads are
    set to test values for the session, so no real credentials are ever used."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.setenv(name, "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def lastfm_dir() -> Path:
    """The HetRec 2011 Last.fm 2k folder, or a skip that says where it was looked for."""
    path = Path(os.environ.get("ENCORE_LASTFM_DIR", LASTFM_DIR))
    if not (path / "user_artists.dat").is_file():
        pytest.skip(f"HetRec 2011 Last.fm 2k not found at {path}; set ENCORE_LASTFM_DIR")
    return path
