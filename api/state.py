"""Resources the API process owns: created in the lifespan, reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.settings import Settings


@dataclass
class Resources:
    """Everything a request may use; tests swap parts of it."""

    settings: Settings
    redis: Any = None  # redis.asyncio client
    store: Any = None  # models.io.redis_store.RedisStore
    producer: Any = None  # models.io.producer.EventProducer (None: broker not reachable yet)
    engine: Any = None  # api.recommend.Engine
    embedder: Any = None  # api.query.QueryEmbedder
    bundle: Any = None  # api.bundle.Bundle, swapped whole by the watcher
    served: Any = None  # api.served.ServedLog (None: served lists are not logged)
    extras: dict[str, Any] = field(default_factory=dict)
