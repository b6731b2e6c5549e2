"""Served lists on a real broker: the API logs every personal answer to `recommendations`,
and `encore ope` reads the log back, joins the feedback and stores its estimates in Redis
where the admin status route shows them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from api.app import create_app
from encore.cli import app as cli
from encore.services import Proc, create_topics, start_broker
from models.bandit import ARMS
from models.codec import decode_served
from models.events import Like, RecContext, ServedItem, ServedList, Skip, event_to_dict
from models.io.artifacts import ArtifactStore
from models.io.producer import EventProducer
from models.keys import ope_key
from models.ope import evaluate, join
from models.settings import ApiSettings, ArtifactSettings, KafkaSettings, RedisSettings, Settings
from models.topics import RECOMMENDATIONS, all_topics, partition_for
from tests.apikit import demo_data, publish_als
from tests.samples import T0
from tests.streamkit import redis_db_url

P = 6
ADMIN = {"X-API-Key": "dev-admin-key"}


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Proc]:
    proc = start_broker(tmp_path, name="ope-broker")
    asyncio.run(create_topics(proc.address, all_topics(), P))
    yield proc
    proc.stop()


@pytest.fixture
def redis_url(redis_server: Proc) -> str:
    url = redis_db_url(redis_server.address, 14)
    redis.Redis.from_url(url).flushdb()
    return url


async def _served_records(bootstrap: str, want: int, timeout_s: float = 20.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        RECOMMENDATIONS, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(out) < want and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                for m in msgs:
                    [served] = decode_served(m.value, max_bytes=1 << 20).events
                    assert tp.partition == partition_for(served.user_id, P)
                    assert m.key == served.user_id.encode()
                    out.append(served)
    finally:
        await consumer.stop()
    return out


def test_a_personal_answer_is_logged_once_to_recommendations(
    own_broker: Proc, redis_url: str, tmp_path: Path
) -> None:
    demo = demo_data()
    publish_als(ArtifactStore(tmp_path / "artifacts"), demo)
    settings = Settings(
        kafka=KafkaSettings(bootstrap=own_broker.address, partitions=P),
        redis=RedisSettings(url=SecretStr(redis_url)),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
    )
    user = demo.interactions[0].user_id
    with TestClient(create_app(settings)) as client:
        for _ in range(100):
            if client.app.state.resources.producer is not None:  # type: ignore[attr-defined]
                break
            asyncio.run(asyncio.sleep(0.05))
        r = client.get(f"/v1/users/{user}/recommendations", params={"n": 7, "context": "home"})
        assert r.status_code == 200, r.text
        answer = r.json()
        [served] = asyncio.run(_served_records(own_broker.address, 1))
    assert answer["items"]
    assert served.rec_id == answer["rec_id"]
    assert served.user_id == user
    assert served.arm == answer["arm"]
    assert served.propensity == answer["propensity"]
    assert [i.track_id for i in served.items] == [i["track_id"] for i in answer["items"]]
    assert [i.position for i in served.items] == list(range(len(answer["items"])))
    assert served.model_versions == answer["model_versions"]
    assert served.context == "home"
    assert asyncio.run(_served_records(own_broker.address, 2, timeout_s=2.0)) == [served]


def test_a_broker_that_is_away_never_fails_a_request(tmp_path: Path) -> None:
    settings = Settings(
        kafka=KafkaSettings(bootstrap="127.0.0.1:1", partitions=P),
        artifacts=ArtifactSettings(root=tmp_path / "none"),
        api=ApiSettings(),
    )
    with TestClient(create_app(settings)) as client:
        for _ in range(3):
            assert client.get("/v1/users/u1/recommendations").status_code == 200
        assert client.app.state.resources.served.queue.qsize() == 3  # type: ignore[attr-defined]


def _simulated_log(n: int, seed: int) -> tuple[list[ServedList], list[Any]]:
    """Uniform logging over the arms; arm i engages each track with chance 0.1 + 0.1 i."""
    rng = np.random.default_rng(seed)
    names = list(ARMS)
    lists, feedback = [], []
    for i in range(n):
        a = int(rng.integers(len(names)))
        user = f"u{int(rng.integers(40))}"
        t = T0 + timedelta(seconds=i)
        served = ServedList(
            rec_id=f"rec-{i}",
            user_id=user,
            occurred_at=t,
            arm=names[a],
            propensity=1 / len(names),
            items=tuple(ServedItem(track_id=f"t{i}-{k}", position=k) for k in range(5)),
        )
        lists.append(served)
        for k in range(5):
            ctx = RecContext(rec_id=served.rec_id, arm=served.arm, position=k)
            kind = Like if rng.random() < 0.1 + 0.1 * a else Skip
            extra = {"ms_played": 3_000} if kind is Skip else {}
            if rng.random() < 0.7:
                feedback.append(
                    kind(
                        event_id=f"fb-{i}-{k}",
                        occurred_at=t + timedelta(seconds=30),
                        user_id=user,
                        track_id=f"t{i}-{k}",
                        context=ctx,
                        **extra,
                    )
                )
    return lists, feedback


async def _produce(bootstrap: str, lists: list[ServedList], feedback: list[Any]) -> None:
    async with EventProducer(bootstrap, P) as producer:
        await producer.send_records(
            [
                (
                    RECOMMENDATIONS,
                    partition_for(s.user_id, P),
                    s.user_id.encode(),
                    orjson.dumps(event_to_dict(s)),
                )
                for s in lists
            ]
        )
        await producer.send_events(feedback)


def test_encore_ope_reads_the_log_estimates_and_the_status_route_shows_it(
    own_broker: Proc, redis_url: str, tmp_path: Path
) -> None:
    lists, feedback = _simulated_log(600, seed=4)
    asyncio.run(_produce(own_broker.address, lists, feedback))
    env = {
        "ENCORE_KAFKA_BOOTSTRAP": own_broker.address,
        "ENCORE_KAFKA_PARTITIONS": str(P),
        "ENCORE_REDIS_URL": redis_url,
        "ENCORE_ARTIFACTS_ROOT": str(tmp_path / "none"),
    }
    out = tmp_path / "ope.json"
    run = CliRunner().invoke(cli, ["ope", "--out", str(out)], env=env)
    assert run.exit_code == 0, run.output
    assert "| arm | lists | live rate |" in run.output
    result = orjson.loads(out.read_bytes())
    assert result["lists"] == 600
    assert result["feedback_joined"] == len(feedback)
    assert result["feedback_unmatched"] == 0
    # what came back through the broker is exactly what was sent
    local = evaluate(join(lists, feedback, full_play=0.8).lists, ARMS)
    for arm, est in local.items():
        got = result["arms"][arm]
        assert (got["lists"], got["feedback"]) == (est.lists, est.feedback)
        for name in ("ips", "snips", "dr"):
            assert got[name]["value"] == pytest.approx(getattr(est, name).value, abs=1e-4)
    # the engagement order of the arms is recovered (uniform logging: IPS is on target)
    ips = [result["arms"][a]["ips"]["value"] for a in ARMS]
    truth = [0.7 * (0.1 + 0.1 * i) for i in range(len(ARMS))]
    assert np.allclose(ips, truth, atol=0.06), (ips, truth)
    assert orjson.loads(redis.Redis.from_url(redis_url).get(ope_key("enc")) or b"{}") == result

    settings = Settings(
        kafka=KafkaSettings(bootstrap=None, partitions=P),
        redis=RedisSettings(url=SecretStr(redis_url)),
        artifacts=ArtifactSettings(root=tmp_path / "none"),
    )
    with TestClient(create_app(settings)) as client:
        status = client.get("/v1/admin/status", headers=ADMIN).json()
    assert status["ope"]["lists"] == 600
    assert status["ope"]["arms"]["balanced"]["dr"] == result["arms"]["balanced"]["dr"]
    assert set(status["bandit"]) == set(ARMS)

    since = CliRunner().invoke(
        cli, ["ope", "--since", "2099-01-01T00:00Z", "--json", "--no-store"], env=env
    )
    assert since.exit_code == 0, since.output
    # stdout alone: a model-loading progress bar of the app above may still reach stderr
    assert orjson.loads(since.stdout)["lists"] == 0
