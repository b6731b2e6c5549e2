"""The stream worker loads the published item space before it applies its first batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from models.io.artifacts import ArtifactStore, save_array, save_json
from models.settings import ArtifactSettings, KafkaSettings, RedisSettings, Settings, StreamSettings
from streams.worker import Worker


def _publish_space(root: Path) -> str:
    store = ArtifactStore(root)
    path = store.stage("als")
    save_json(path, "item_ids.json", ["t0", "t1"])
    save_array(path, "item_factors", np.eye(2, dtype=np.float32))
    return store.publish("als", path)


@pytest.mark.parametrize("published", [True, False])
def test_the_first_batch_waits_for_the_published_item_space(
    tmp_path: Path, published: bool
) -> None:
    root = tmp_path / "artifacts"
    version = _publish_space(root) if published else None
    settings = Settings(
        kafka=KafkaSettings(bootstrap="127.0.0.1:1"),  # never contacted here
        redis=RedisSettings(url=SecretStr("redis://127.0.0.1:1/0")),
        artifacts=ArtifactSettings(root=root),
        stream=StreamSettings(embed_text=False),
    )
    worker = Worker(settings)
    assert worker.items.space is None  # nothing loaded when the worker is built

    async def first_batches() -> None:
        # two agents' first (empty) batches at once: one load, both wait for it
        await asyncio.gather(
            worker._process("interactions", None, []), worker._process("tracks", None, [])
        )

    asyncio.run(first_batches())
    if published:
        assert worker.items.space is not None
        assert worker.items.space.version == version
        assert worker.items.model == version
    else:
        assert worker.items.space is None
