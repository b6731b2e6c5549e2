"""``encore scan DIR``: a listener's own music folder as events, read strictly read-only.

The walking, tag reading and event building are :mod:`batch.library`; this module
loads and saves the incremental state (under the run directory, never in DIR),
sends the events through the one producer and prints the summary.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from models.settings import Settings


async def send(settings: Settings, tracks: list[Any], interactions: list[Any]) -> None:
    """Produce the catalog events, then the interactions (same partitioning as all events)."""
    from models.io.producer import EventProducer

    assert settings.kafka.bootstrap
    async with EventProducer(
        settings.kafka.bootstrap,
        settings.kafka.partitions,
        max_record_bytes=settings.kafka.max_record_bytes,
    ) as producer:
        if tracks:
            await producer.send_events(tracks)
        if interactions:
            await producer.send_events(interactions)


def run_scan(
    settings: Settings,
    root: Path,
    user_id: str,
    *,
    dry_run: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Scan ``root``, send what is new (unless ``dry_run``), save the state; the summary."""
    from batch.library import library_events, load_state, save_state, scan_library, state_path

    root = Path(os.path.abspath(root))
    state_file = state_path(settings.run.dir, root)
    result = scan_library(
        root,
        load_state(state_file),
        max_bytes=settings.scan.max_file_mb * 2**20,
        progress=progress,
    )
    now = datetime.now(UTC).replace(microsecond=0)
    tracks, interactions = library_events(root, result.send, result.known_tracks, user_id, now)
    if not dry_run:
        if tracks or interactions:
            if not settings.kafka.bootstrap:
                raise typer.BadParameter("set ENCORE_KAFKA_BOOTSTRAP (or use --dry-run)")
            asyncio.run(send(settings, tracks, interactions))
        save_state(state_file, root, result.files)  # only once the broker acknowledged
    real = Path(os.path.realpath(root))
    roots = [Path(os.path.realpath(r)) for r in settings.audio.local_roots]
    under_roots = any(real.is_relative_to(r) for r in roots)
    kinds = [e.type for e in interactions]
    return {
        "root": str(root),
        "user": user_id,
        "state_file": str(state_file),
        "dry_run": dry_run,
        "found": len(result.files),
        "new": len(result.new),
        "changed": len(result.changed),
        "unchanged": len(result.unchanged),
        "removed": result.removed,
        "duplicates": [{"path": dup, "same_as": keep} for keep, dup in result.duplicates],
        "skipped": {reason: paths for reason, paths in sorted(result.skipped.items())},
        "events": {
            "tracks": len(tracks),
            "likes": kinds.count("like"),
            "dislikes": kinds.count("dislike"),
            "plays": kinds.count("play"),
        },
        "sent": not dry_run and bool(tracks or interactions),
        "under_audio_roots": under_roots,
    }


def summary_text(s: dict[str, Any]) -> str:
    """The summary as a few aligned lines."""
    ev = s["events"]
    verb = "would send" if s["dry_run"] else "sent"
    lines = [
        f"scanned {s['root']} (state: {s['state_file']})",
        f"  found       {s['found']} audio files",
        f"  new         {s['new']}",
        f"  changed     {s['changed']}",
        f"  unchanged   {s['unchanged']}",
        f"  removed     {len(s['removed'])} (nothing is sent for them)",
        f"  duplicates  {len(s['duplicates'])}",
    ]
    lines += [f"    {d['path']} = {d['same_as']}" for d in s["duplicates"]]
    for reason, paths in s["skipped"].items():
        lines.append(f"  skipped     {len(paths)} {reason}")
        lines += [f"    {p}" for p in paths[:20]]
        if len(paths) > 20:
            lines.append(f"    ... and {len(paths) - 20} more")
    lines.append(
        f"{verb}: {ev['tracks']} tracks; for {s['user']}: {ev['likes']} likes, "
        f"{ev['dislikes']} dislikes, {ev['plays']} plays"
    )
    if not s["under_audio_roots"]:
        lines.append(
            "note: the folder is not under ENCORE_AUDIO_LOCAL_ROOTS, so training extracts "
            "no audio features from these files (add it there)"
        )
    return "\n".join(lines)


def scan(
    folder: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, dir_okay=True, help="Music folder."),
    ],
    user: Annotated[
        str | None,
        typer.Option(help="Listener for embedded ratings/play counts (default ENCORE_SCAN_USER)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Send nothing, save no state.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
) -> None:
    """Read a music folder strictly read-only and send its new or changed tracks as events."""
    from pydantic import TypeAdapter, ValidationError

    from models.events import Id
    from models.settings import load_settings

    settings = load_settings()
    user_id = user or settings.scan.user
    try:
        TypeAdapter(Id).validate_python(user_id)
    except ValidationError as exc:
        raise typer.BadParameter("--user: 1-128 characters, no spaces or control codes") from exc
    try:
        summary = run_scan(settings, folder, user_id, dry_run=dry_run, progress=progress)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()
        if json
        else summary_text(summary)
    )


def register(parent: typer.Typer) -> None:
    """Add ``encore scan`` to the ``encore`` app."""
    parent.command("scan")(scan)
