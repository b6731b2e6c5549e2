"""``encore recommend USER``: one listener's list from the command line, optionally as an
XSPF playlist file.

It runs the API's own personal route in-process (:func:`api.recommend.personal`:
the published artifacts, the listener's live state in Redis, the published
policy's arm), so the list is the one ``GET /v1/users/{id}/recommendations``
gives for the same state. The playlist points at local audio files directly
(``file://``) when they lie under the trusted roots (``ENCORE_AUDIO_LOCAL_ROOTS``
and the packaged clips): a file on this machine, for a player on this machine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer


async def recommend_one(settings: Any, user_id: str, n: int) -> dict[str, Any]:
    """The personal list of ``user_id`` (``n`` tracks), with local audio as file URLs."""
    from api.app import build_resources
    from api.bundle import BundleWatcher
    from api.recommend import personal
    from models.io.artifacts import remote_of
    from models.io.localaudio import servable, trusted_roots
    from models.ranking import track_info
    from models.rerank import Filters

    res = build_resources(settings)
    try:
        watcher = BundleWatcher(
            res,
            Path(settings.artifacts.root),
            settings.artifacts.keep_versions,
            remote=remote_of(settings.artifacts),
        )
        await watcher.check()
        if res.bundle.collab is None and res.bundle.content is None:
            raise typer.BadParameter(
                f"no published models under {settings.artifacts.root} (run `encore train`)"
            )
        recs = await personal(res.engine, res.bundle, user_id, n, Filters(), "cli")
        roots = trusted_roots(settings.audio.local_roots)
        for item in recs["items"]:
            raw = track_info(res.bundle, {}, item["track_id"]).get("audio_url")
            local = servable(raw, roots) if isinstance(raw, str) else None
            if local is not None:
                item["audio_url"] = local.as_uri()
        return recs
    finally:
        if res.store is not None:
            await res.store.close()
        res.engine.pool.close()


def recommend(
    user_id: Annotated[str, typer.Argument(help="The listener's id.")],
    top_n: Annotated[int, typer.Option("--top-n", min=1, max=100, help="Tracks.")] = 20,
    xspf_file: Annotated[
        Path | None, typer.Option("--xspf", help="Also write the list as an XSPF playlist.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """One listener's recommendations (the API's personal route, run here)."""
    import orjson
    from pydantic import TypeAdapter, ValidationError

    from api.playlist import xspf
    from models.events import Id
    from models.settings import load_settings

    try:
        TypeAdapter(Id).validate_python(user_id)
    except ValidationError as exc:
        raise typer.BadParameter(f"user id: {exc.errors()[0]['msg']}") from exc
    settings = load_settings()
    recs = asyncio.run(recommend_one(settings, user_id, top_n))
    if xspf_file is not None:
        base = f"http://{settings.api.host}:{settings.api.port or 8000}/"
        body = xspf(f"Encore for {user_id}", user_id, recs["items"], recs["rec_id"], base)
        xspf_file.parent.mkdir(parents=True, exist_ok=True)
        xspf_file.write_bytes(body)
    if json:
        typer.echo(orjson.dumps(recs, option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo(f"{user_id}: {len(recs['items'])} tracks, arm {recs['arm']}")
    for i, item in enumerate(recs["items"], 1):
        who = f"{item.get('title') or item['track_id']} - {item.get('artist') or '?'}"
        typer.echo(f"{i:>3}. {who}  ({item['reason']})")
    if recs["degraded"]:
        typer.echo(f"degraded: {', '.join(recs['degraded_reasons'])}", err=True)
    if xspf_file is not None:
        typer.echo(f"playlist: {xspf_file}")


def register(parent: typer.Typer) -> None:
    """Add ``encore recommend`` to the ``encore`` app."""
    parent.command("recommend")(recommend)
