"""The README stays true: its settings table is the generated one, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from encore.cli import app
from models.settings import settings_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_settings_table_matches_the_settings_tree() -> None:
    block = README.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0]
    assert block.strip() == settings_table().strip()


def test_every_encore_command_in_the_readme_exists() -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    mentioned = set(re.findall(r"`encore (\w[\w-]*)", README))
    assert mentioned, "the README names no encore command"
    assert mentioned <= commands, mentioned - commands
    assert commands <= mentioned, f"undocumented: {commands - mentioned}"
