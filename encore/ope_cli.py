"""``encore ope``: off-policy estimates of every bandit arm (see :mod:`batch.ope`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer


async def run_ope(settings: Any, since_ms: int | None, store: bool = True) -> dict[str, Any]:
    """Read the log, estimate, and store the result in Redis (when configured and asked)."""
    from batch.ope import read_log, report, to_json
    from models.keys import ope_key

    if not settings.kafka.bootstrap:
        raise typer.BadParameter("set ENCORE_KAFKA_BOOTSTRAP (or run against `encore up`)")
    served, feedback, rejected = await read_log(
        settings.kafka.bootstrap,
        partitions=settings.kafka.partitions,
        max_bytes=settings.kafka.max_record_bytes,
    )
    result = report(
        served,
        feedback,
        full_play=settings.stream.full_play,
        since_ms=since_ms,
        rejected=rejected,
    )
    if store and settings.redis.url is not None:
        from redis.exceptions import RedisError

        from models.io.redis_store import connect

        client = connect(settings.redis.url.get_secret_value(), cluster=settings.redis.cluster)
        try:
            await client.set(ope_key(settings.redis.key_prefix), to_json(result))
        except (RedisError, OSError) as exc:  # the estimates are still printed and written
            typer.echo(f"not stored for the operator panel (Redis): {exc}", err=True)
        finally:
            await client.aclose()
    return result


def ope(
    since: Annotated[
        str | None,
        typer.Option(help="Only lists served since: ISO-8601 with offset, or 30m, 24h, 7d."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON result here.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
    store: Annotated[
        bool, typer.Option(help="Store the result in Redis for the operator panel.")
    ] = True,
) -> None:
    """Off-policy estimates (IPS, SNIPS, DR, 95% CIs) of each bandit arm from served lists."""
    from batch.ope import parse_since, table, to_json
    from models.settings import load_settings

    since_ms = None
    if since is not None:
        try:
            since_ms = parse_since(since)
        except ValueError as exc:
            raise typer.BadParameter(f"--since: {exc}") from exc
    result = asyncio.run(run_ope(load_settings(), since_ms, store))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(to_json(result) + b"\n")
    typer.echo(to_json(result).decode() if json else table(result))


def register(parent: typer.Typer) -> None:
    """Add ``encore ope`` to the ``encore`` app."""
    parent.command("ope")(ope)
