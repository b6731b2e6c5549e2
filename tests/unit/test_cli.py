"""Every `encore` command answers --help."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from encore.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_schema_command_prints_the_generated_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert '"EventBatch"' in result.output
    assert '"discriminator"' in result.output
