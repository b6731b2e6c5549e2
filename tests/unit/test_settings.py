"""The settings tree reads ENCORE_* variables per section and refuses dev keys in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.settings import SECTIONS, hash_key, load_settings, settings_table


def test_sections_read_their_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCORE_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("ENCORE_REDIS_URL", "redis://:secret@r:6379/0")
    monkeypatch.setenv("ENCORE_STREAM_BATCH_SIZE", "123")
    monkeypatch.setenv("ENCORE_API_API_KEYS", "one, two")
    s = load_settings()
    assert s.kafka.bootstrap == "k1:9092,k2:9092"
    assert s.redis.url is not None
    assert s.redis.url.get_secret_value() == "redis://:secret@r:6379/0"
    assert "secret" not in repr(s.redis)
    assert s.stream.batch_size == 123
    assert [k.get_secret_value() for k in s.api.api_keys] == ["one", "two"]


def test_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCORE_KAFKA_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        load_settings()


def test_production_refuses_missing_or_built_in_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCORE_MODE", "production")
    with pytest.raises(ValidationError, match="needs ENCORE_API_API_KEYS"):
        load_settings()
    monkeypatch.setenv("ENCORE_API_API_KEYS", "dev-ingest-key")
    monkeypatch.setenv("ENCORE_API_ADMIN_KEYS", "a-long-enough-admin-key")
    with pytest.raises(ValidationError, match="refuses"):
        load_settings()
    monkeypatch.setenv("ENCORE_API_API_KEYS", hash_key("a-long-enough-ingest-key"))
    assert load_settings().mode.value == "production"


def test_every_setting_is_documented() -> None:
    table = settings_table()
    for prefix, cls in SECTIONS.items():
        for name, info in cls.model_fields.items():
            assert info.description, f"{prefix}.{name} has no description"
            assert f"ENCORE_{prefix}_{name.upper()}" in table
