"""Schema-driven fuzzing of the OpenAPI spec against a real server: no request gets a 5xx."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error

from api.app import create_app
from encore.services import Proc, create_topics, free_port
from models.settings import ApiSettings, ArtifactSettings, KafkaSettings, RedisSettings, Settings
from models.topics import all_topics
from tests.apikit import Built, build
from tests.streamkit import redis_db_url

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    redis_server: Proc, broker: Proc, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    asyncio.run(create_topics(broker.address, all_topics(), 6))
    built: Built = build(tmp_path_factory.mktemp("fuzz-artifacts"))
    url = redis_db_url(redis_server.address, 10)
    redis.Redis.from_url(url).flushdb()
    s = Settings(
        kafka=KafkaSettings(bootstrap=broker.address, partitions=6),
        redis=RedisSettings(url=SecretStr(url)),
        artifacts=ArtifactSettings(root=built.root),
        api=ApiSettings(max_request_bytes=100_000),
    )
    port = free_port()
    app = create_app(s)
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(base + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    for _ in range(200):  # ingest answers 503 until the producer has connected
        if getattr(app.state, "resources", None) and app.state.resources.producer is not None:
            break
        time.sleep(0.05)
    yield base
    srv.should_exit = True
    thread.join(10)


def test_no_request_gets_a_server_error(server: str) -> None:
    schema = schemathesis.openapi.from_url(server + "/openapi.json")
    schema.config.update(base_url=server)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 12
    tried: dict[str, int] = {}
    for operation in operations:
        _fuzz(operation, f"{operation.method.upper()} {operation.path}", tried)
    print(f"fuzzed {sum(tried.values())} requests over {len(tried)} operations")


def _fuzz(operation: schemathesis.APIOperation, label: str, tried: dict[str, int]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: schemathesis.Case) -> None:
        tried[label] = tried.get(label, 0) + 1
        case.call_and_validate(checks=[not_a_server_error], headers={"X-API-Key": "dev-admin-key"})

    check()
