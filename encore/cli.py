"""The ``encore`` command. Each command imports what it needs when it runs."""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

app = typer.Typer(
    help="Encore: event-driven streaming music recommender.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def up(
    workers: Annotated[int | None, typer.Option(help="Stream worker processes.")] = None,
    demo: Annotated[bool | None, typer.Option(help="Load the demo catalog if empty.")] = None,
    api_port: Annotated[int | None, typer.Option(help="API port (0: a free one).")] = None,
    api_processes: Annotated[
        int | None, typer.Option(min=1, max=64, help="API processes (default: one per core).")
    ] = None,
) -> None:
    """Run the whole system: embedded broker and Redis unless configured, workers, API."""
    from encore.stack import run_stack
    from models.settings import load_settings

    settings = load_settings()
    if workers is not None:
        settings.run.workers = workers
    if demo is not None:
        settings.run.demo = demo
    if api_port is not None:
        settings.api.port = api_port
    if api_processes is not None:
        settings.api.processes = api_processes
    sys.exit(run_stack(settings))


@app.command()
def worker() -> None:
    """Run one stream worker process (Faust agents) against the configured broker and Redis."""
    from models.settings import load_settings
    from streams.worker import run_worker

    run_worker(load_settings())


@app.command()
def api(
    processes: Annotated[
        int | None, typer.Option(min=1, max=64, help="Processes (default: one per core).")
    ] = None,
) -> None:
    """Run the API server (uvicorn, ENCORE_API_PROCESSES processes on one port) against the
    configured Redis, broker and artifacts."""
    import os

    from api.server import serve
    from models.settings import load_settings

    if processes is not None:  # worker processes read their settings from the environment
        os.environ["ENCORE_API_PROCESSES"] = str(processes)
    serve(load_settings())


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of a record (one event or a batch), generated from the models."""
    from models.events import json_schema

    text = orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode()
    if out:
        out.write_text(text + "\n")
    else:
        typer.echo(text)


@app.command("settings")
def settings_cmd() -> None:
    """Print every setting (environment variable, default, meaning) as a markdown table."""
    from models.settings import settings_table

    typer.echo(settings_table())


@app.command()
def topics() -> None:
    """Create the input and dead-letter topics on the configured broker (idempotent)."""
    from encore.services import create_topics
    from models.settings import load_settings
    from models.topics import all_topics

    s = load_settings()
    if not s.kafka.bootstrap:
        raise typer.BadParameter("set ENCORE_KAFKA_BOOTSTRAP")
    made = asyncio.run(
        create_topics(
            s.kafka.bootstrap, all_topics(), s.kafka.partitions, s.kafka.replication_factor
        )
    )
    typer.echo(f"created: {', '.join(made) or 'nothing (all exist)'}")


class Dataset(StrEnum):
    """Datasets ``encore load`` understands."""

    demo = "demo"
    lastfm_2k = "lastfm-2k"
    movielens_100k = "movielens-100k"


@app.command()
def load(
    dataset: Annotated[Dataset, typer.Argument(help="Which dataset.")],
    path: Annotated[Path | None, typer.Argument(help="Dataset folder (lastfm-2k).")] = None,
    limit: Annotated[int | None, typer.Option(help="Load at most this many interactions.")] = None,
) -> None:
    """Turn a dataset into events on the topics: catalog first, then interactions."""
    from encore.loading import load_dataset
    from models.settings import load_settings

    s = load_settings()
    if not s.kafka.bootstrap:
        raise typer.BadParameter("set ENCORE_KAFKA_BOOTSTRAP (or use `encore up`)")
    n_tracks, n_events = asyncio.run(load_dataset(s, dataset.value, path, limit))
    typer.echo(f"loaded {n_tracks} tracks and {n_events} interactions from {dataset.value}")


@app.command()
def replay(
    from_: Annotated[
        str, typer.Option("--from", help="`earliest`, or an ISO-8601 time: replay from there.")
    ] = "earliest",
    cutover: Annotated[bool, typer.Option(help="Switch readers to the rebuilt state.")] = True,
    processes: Annotated[
        int, typer.Option(min=1, max=64, help="Processes (split partitions).")
    ] = 1,
) -> None:
    """Rebuild all state from the topics into a shadow keyspace, then cut over atomically."""
    from datetime import datetime

    from encore.ops import run_replay
    from models.settings import load_settings

    from_ms = None
    if from_ != "earliest":
        try:
            when = datetime.fromisoformat(from_)
        except ValueError as exc:
            raise typer.BadParameter(f"--from: not `earliest` or ISO-8601: {from_}") from exc
        if when.tzinfo is None:
            raise typer.BadParameter("--from: give a time zone offset, e.g. 2024-05-01T00:00Z")
        from_ms = int(when.timestamp() * 1000)
    report = asyncio.run(run_replay(load_settings(), from_ms, cutover, processes))
    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


dlq_app = typer.Typer(
    help="Dead-letter topics: look inside, send fixed events back.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("inspect")
def dlq_inspect(
    topic: Annotated[list[str] | None, typer.Option(help="Source topic(s); default all.")] = None,
    limit: Annotated[int, typer.Option(help="Entries to print.")] = 20,
) -> None:
    """Count dead letters by topic and reason and print the latest entries."""
    from encore.ops import inspect_dlq
    from models.settings import load_settings

    typer.echo(
        orjson.dumps(
            asyncio.run(inspect_dlq(load_settings(), topic, limit)), option=orjson.OPT_INDENT_2
        ).decode()
    )


@dlq_app.command("redrive")
def dlq_redrive(
    topic: Annotated[list[str] | None, typer.Option(help="Source topic(s); default all.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only dead letters with this reason.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Count, send nothing.")] = False,
) -> None:
    """Send dead letters that now validate back to their topic (same event ids)."""
    from encore.ops import redrive_dlq
    from models.settings import load_settings

    report = asyncio.run(redrive_dlq(load_settings(), topic, reason, dry_run))
    typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


@app.command()
def probe(
    once: Annotated[bool, typer.Option(help="One pass, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 300.0,
    recheck: Annotated[float, typer.Option(help="Re-check a link after this many s.")] = 86_400.0,
) -> None:
    """Check catalog audio links (HEAD, then ranged GET) and send link-check events."""
    from encore.ops import run_probe
    from models.settings import load_settings

    asyncio.run(run_probe(load_settings(), once=once, interval_s=interval, recheck_s=recheck))


@app.command()
def bench(
    name: Annotated[
        str, typer.Argument(help="stream, serving, freshness, batch, bandit or all")
    ] = "all",
    only: Annotated[
        str | None,
        typer.Option(help="batch only: one part (training, index, text or audio)"),
    ] = None,
) -> None:
    """Run benchmarks on the embedded stack; write bench/results/<name>.json, print tables."""
    from bench.run import run_benchmarks

    run_benchmarks(name, only)


@app.command()
def drills() -> None:
    """Run the fault drills on the embedded stack and print one accounting table."""
    from bench.drills import main as run_drills

    run_drills()


def _register_batch() -> None:
    from encore import ope_cli, recommend_cli, scan_cli, train_cli, vectors_cli

    train_cli.register(app)
    ope_cli.register(app)
    recommend_cli.register(app)
    scan_cli.register(app)
    vectors_cli.register(app)


_register_batch()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
