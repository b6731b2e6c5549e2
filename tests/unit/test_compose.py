"""docker-compose.yml can't run here (no Docker engine), so check what can be checked:
every Encore service runs a real `encore` command, every ENCORE_* variable is a real
setting, ports agree with the settings, and start order waits on health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from encore.cli import app
from models.settings import SECTIONS, Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def _known_variables() -> set[str]:
    names = {"ENCORE_MODE"}
    for prefix, cls in SECTIONS.items():
        names |= {f"ENCORE_{prefix}_{field.upper()}" for field in cls.model_fields}
    return names


def _encore_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == "encore:latest"}


def test_every_encore_service_runs_a_real_command(compose: dict[str, Any]) -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    services = _encore_services(compose)
    assert {"worker", "api", "topics"} <= set(services)
    for name, svc in services.items():
        cmd = svc["command"]
        assert cmd[0] == "encore", name
        assert cmd[1] in commands, f"{name}: `encore {cmd[1]}` does not exist"


def test_every_encore_variable_is_a_setting_and_validates(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    known = _known_variables()
    for name, svc in _encore_services(compose).items():
        env = svc.get("environment", {})
        for var in env:
            assert var in known, f"{name}: {var} is not a setting"
        for var, value in env.items():
            text = str(value)
            if text.startswith("${"):
                text = "a-production-key-of-enough-length"
            monkeypatch.setenv(var, text)
        Settings.model_validate({})  # each section reads and validates its variables
        monkeypatch.undo()


def test_api_port_matches_its_setting(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    port = api["environment"]["ENCORE_API_PORT"]
    assert any(str(p).endswith(f":{port}") for p in api["ports"])


def test_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, rule in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            wanted = "service_completed_successfully" if dep == "topics" else "service_healthy"
            assert rule["condition"] == wanted, f"{name} -> {dep}"
            if wanted == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"


def test_redis_persists_with_aof_and_kafka_runs_kraft(compose: dict[str, Any]) -> None:
    redis_cmd = compose["services"]["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_grafana_dashboard_and_prometheus_config_are_provisioned() -> None:
    assert (ROOT / "deploy/prometheus/prometheus.yml").is_file()
    assert (ROOT / "deploy/grafana/dashboards/encore.json").is_file()
    assert (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").is_file()
