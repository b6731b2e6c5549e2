"""``encore vectors migrate|sync``: copy the published vectors (the content spaces and
the ALS item factors) into a backend, then check every backend against them (the work
is :mod:`models.io.vectors`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer

vectors_app = typer.Typer(
    help="Vector backends: copy the published vectors into one, verify them.",
    no_args_is_help=True,
)


class Backend(StrEnum):
    faiss = "faiss"
    milvus = "milvus"


class Space(StrEnum):
    text = "text"
    audio = "audio"
    collab = "collab"
    all = "all"


def _table(rows: list[dict[str, Any]]) -> str:
    header = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines)


@vectors_app.command("migrate")
def migrate(
    to: Annotated[Backend, typer.Option("--to", help="Target backend.")],
    space: Annotated[Space, typer.Option(help="Which vectors.")] = Space.all,
) -> None:
    """Copy the published vectors (content: ids, vectors, genre, artist, year; ALS: item
    factors as unit MIPS rows, artist) into the target backend, replacing what it held
    for those versions."""
    from models.io.vectors import migrate as run_migrate
    from models.settings import load_settings

    report = run_migrate(load_settings(), to.value, space.value)
    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    typer.echo(_table(report))


@vectors_app.command("sync")
def sync(
    space: Annotated[Space, typer.Option(help="Which vectors.")] = Space.all,
) -> None:
    """Verify both backends hold the published versions' vectors: counts, checksums and
    recall@10 against exact search; exit code 1 when any check fails."""
    from models.io.vectors import sync as run_sync
    from models.settings import load_settings

    report = run_sync(load_settings(), space.value)
    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    typer.echo(_table(report["checks"]))
    if not report["ok"]:
        raise typer.Exit(1)


def register(parent: typer.Typer) -> None:
    """Add ``encore vectors`` to the ``encore`` app."""
    parent.add_typer(vectors_app, name="vectors")
