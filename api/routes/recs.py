"""Recommendation, similarity, radio and playlist routes (``/v1``)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, HTTPException, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from api.deps import ReadAccess, Res
from api.identify import ClipError, ClipLimits, identify
from api.playlist import xspf
from api.query import mood_json, query_recs, similar_tracks
from api.recommend import artist_key, personal, public_info, track_info
from api.soundalike import ClipWanted, Wanted
from api.state import Resources
from api.validation import StrictJSONRoute, comma_separated, query_error
from models.io.localaudio import AUDIO_TYPES, servable, trusted_roots
from models.rerank import Filters

router = APIRouter(prefix="/v1", tags=["recommendations"], route_class=StrictJSONRoute)
IdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x20\x7f]+$")]
MAX_GENRES, GENRE_CHARS = 20, 50
MAX_EXCLUDED, ARTIST_CHARS = 100, 128


class FilterBody(BaseModel):
    """Restrictions on the results."""

    model_config = ConfigDict(extra="forbid")

    genres: list[Annotated[str, Field(max_length=GENRE_CHARS)]] = Field(
        default_factory=list, max_length=MAX_GENRES
    )
    year_min: Annotated[int, Field(ge=1000, le=2200)] | None = None
    year_max: Annotated[int, Field(ge=1000, le=2200)] | None = None
    exclude_artists: list[Annotated[str, Field(max_length=ARTIST_CHARS)]] = Field(
        default_factory=list, max_length=MAX_EXCLUDED
    )

    @model_validator(mode="after")
    def _years_in_order(self) -> FilterBody:
        if self.year_min and self.year_max and self.year_min > self.year_max:
            raise ValueError("year_min must not be after year_max")
        return self

    def to_filters(self) -> Filters:
        return Filters(
            genres=frozenset(g.lower() for g in self.genres),
            year_min=self.year_min,
            year_max=self.year_max,
            exclude_artists=frozenset(self.exclude_artists),
        )


class QueryBody(BaseModel):
    """A free-text recommendation request."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=500, description="e.g. 'rainy sunday'")
    top_k: int = Field(default=20, ge=1, le=100)
    filters: FilterBody = Field(default_factory=FilterBody)


def _filters(
    genres: str | None, year_min: int | None, year_max: int | None, exclude_artists: str | None
) -> Filters:
    """Filters from query parameters; a violation is a 422 naming the parameter."""
    try:
        body = FilterBody(
            genres=[g for g in (genres or "").split(",") if g],
            year_min=year_min,
            year_max=year_max,
            exclude_artists=[a for a in (exclude_artists or "").split(",") if a],
        )
    except ValidationError as exc:
        raise query_error(exc, lambda loc: str(loc[0]) if loc else "year_min") from exc
    return body.to_filters()


def _n(res: Resources, n: int) -> int:
    return min(n, res.settings.api.max_results)


@router.get(
    "/users/{user_id}/recommendations",
    dependencies=[ReadAccess],
    summary="Personal recommendations, reflecting the user's last events",
)
async def user_recommendations(
    res: Res,
    user_id: IdPath,
    n: Annotated[int, Query(ge=1, le=100)] = 20,
    context: Annotated[str | None, Query(max_length=64, pattern=r"^[\w .:-]*$")] = None,
    genres: Annotated[
        str | None,
        Query(
            max_length=MAX_GENRES * (GENRE_CHARS + 1),
            description=f"comma-separated, at most {MAX_GENRES} of at most {GENRE_CHARS} "
            "characters",
        ),
        comma_separated(MAX_GENRES, GENRE_CHARS),
    ] = None,
    year_min: Annotated[int | None, Query(ge=1000, le=2200)] = None,
    year_max: Annotated[int | None, Query(ge=1000, le=2200)] = None,
    exclude_artists: Annotated[
        str | None,
        Query(
            max_length=MAX_EXCLUDED * (ARTIST_CHARS + 1),
            description=f"comma-separated artist ids or names, at most {MAX_EXCLUDED} of at "
            f"most {ARTIST_CHARS} characters",
        ),
        comma_separated(MAX_EXCLUDED, ARTIST_CHARS),
    ] = None,
) -> dict[str, Any]:
    filters = _filters(genres, year_min, year_max, exclude_artists)
    answer = await personal(res.engine, res.bundle, user_id, _n(res, n), filters, context)
    if res.served is not None:
        res.served.offer(answer)  # queued; sent in the background
    return answer


@router.post(
    "/recommend",
    dependencies=[ReadAccess],
    summary="Recommendations for a free-text query (mood, genre, artist, attribute)",
)
async def recommend(res: Res, body: QueryBody) -> dict[str, Any]:
    return await query_recs(
        res.engine,
        res.bundle,
        res.embedder,
        body.query,
        _n(res, body.top_k),
        body.filters.to_filters(),
    )


@router.get(
    "/tracks/{track_id}/similar",
    dependencies=[ReadAccess],
    summary="Tracks similar to a track (collaborative, text and audio neighbours)",
)
async def similar(
    res: Res, track_id: IdPath, n: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    out = await similar_tracks(res.engine, res.bundle, track_id, _n(res, n))
    if out is None:
        raise HTTPException(404, f"track {track_id!r} is in no published model")
    return out


@router.get(
    "/tracks/{track_id}",
    dependencies=[ReadAccess],
    summary="A track: metadata, mood, audio features, link health",
)
async def track(res: Res, track_id: IdPath) -> dict[str, Any]:
    bundle = res.bundle
    catalog, link = await _live_facts(res, track_id, with_link=True)
    info = track_info(bundle, catalog, track_id)
    if not info:
        raise HTTPException(404, f"unknown track {track_id!r}")
    return {
        "track_id": track_id,
        **public_info(track_id, info),
        "mood": mood_json(bundle.content, track_id),
        "link_health": link or {"status": "unknown"},
        "artist_key": artist_key(info),
        "model_versions": bundle.versions(),
    }


async def _live_facts(
    res: Resources, track_id: str, *, with_link: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The catalog topic's entry of a track and its link health (empty without Redis)."""
    catalog: dict[str, Any] = {}
    link: dict[str, str] = {}
    if res.engine.reader is not None:
        try:
            keys = await res.engine.reader.keys()
            catalog = await res.engine.reader.catalog(keys, [track_id])
            if with_link:
                link = await res.engine.reader.link_health(keys, track_id)
        except Exception:  # noqa: BLE001 - a track page without live facts is still a page
            link = {}
    return catalog, link


@router.get(
    "/tracks/{track_id}/audio",
    dependencies=[ReadAccess],
    summary="A track's audio, when it is a local file under a trusted folder",
    response_class=FileResponse,
    responses={404: {"description": "the track has no local audio this server may serve"}},
)
async def track_audio(res: Res, track_id: IdPath) -> FileResponse:
    """Serves local audio by track id, so no response names a path on this server.

    Only files under ``ENCORE_AUDIO_LOCAL_ROOTS`` or the packaged demo clips, with an
    audio suffix, are served (ranges supported); anything else is a 404."""
    catalog, _ = await _live_facts(res, track_id, with_link=False)
    url = track_info(res.bundle, catalog, track_id).get("audio_url")
    path = None
    if isinstance(url, str):
        roots = trusted_roots(res.settings.audio.local_roots)
        path = await asyncio.to_thread(servable, url, roots)
    if path is None:
        raise HTTPException(404, "this track has no local audio that this server serves")
    return FileResponse(
        path,
        media_type=AUDIO_TYPES[path.suffix.lower()],
        headers={"X-Content-Type-Options": "nosniff"},
    )


@router.get(
    "/users/{user_id}/similar",
    dependencies=[ReadAccess],
    summary="Listeners with similar taste (batch user factors)",
)
async def similar_users(
    res: Res, user_id: IdPath, n: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    collab = res.bundle.collab
    if collab is None or user_id not in collab.users:
        raise HTTPException(404, f"user {user_id!r} is not in the published model")
    factors = collab.user_factors
    unit = factors / np.maximum(np.linalg.norm(factors, axis=1, keepdims=True), 1e-9)
    sims = unit @ unit[collab.users[user_id]]
    ids = list(collab.users)
    order = [i for i in np.argsort(-sims, kind="stable") if ids[i] != user_id][: _n(res, n)]
    return {
        "user_id": user_id,
        "model_version": collab.version,
        "users": [{"user_id": ids[i], "similarity": round(float(sims[i]), 4)} for i in order],
    }


@router.get(
    "/artists/{artist_id}/radio",
    dependencies=[ReadAccess],
    summary="Radio: the artist's genre and mood neighbourhood, without the artist",
)
async def artist_radio(
    res: Res, artist_id: IdPath, n: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    from api.radio import radio

    out = await radio(res.engine, res.bundle, artist_id, _n(res, n))
    if out is None:
        raise HTTPException(404, f"artist {artist_id!r} has no tracks in the published models")
    return out


@router.get(
    "/users/{user_id}/playlist.xspf",
    dependencies=[ReadAccess],
    summary="The user's recommendations as an XSPF 1.0 playlist",
    response_class=Response,
)
async def playlist(
    request: Request, res: Res, user_id: IdPath, n: Annotated[int, Query(ge=1, le=100)] = 25
) -> Response:
    recs = await personal(res.engine, res.bundle, user_id, _n(res, n), Filters(), "playlist")
    if res.served is not None:
        res.served.offer(recs)
    body = xspf(
        f"Encore for {user_id}", user_id, recs["items"], recs["rec_id"], str(request.base_url)
    )
    return Response(
        body,
        media_type="application/xspf+xml",
        headers={"Content-Disposition": f'attachment; filename="encore-{_safe(user_id)}.xspf"'},
    )


def _safe(name: str) -> str:
    """A file-name-safe form of an id (for the Content-Disposition header)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]


@router.post(
    "/identify",
    dependencies=[ReadAccess],
    summary="Which catalog track is this clip or song; more from the artist, fans also like",
)
async def identify_clip(
    res: Res,
    file: Annotated[
        UploadFile,
        File(
            description="A 5-10 s clip or a whole song (up to ENCORE_API_IDENTIFY_MAX_SECONDS): "
            "WAV, FLAC, Ogg or MP3"
        ),
    ],
    n: Annotated[int, Query(ge=1, le=50)] = 10,
    genres: Annotated[
        str | None,
        Query(
            max_length=MAX_GENRES * (GENRE_CHARS + 1),
            description="when nothing matches, offer only these genres (comma-separated)",
        ),
        comma_separated(MAX_GENRES, GENRE_CHARS),
    ] = None,
    mood: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=r"^[a-z][a-z -]*$",
            description="when nothing matches, offer only tracks of this mood (a mood word "
            "of the catalog's lexicon, e.g. calm, happy, sad, energetic)",
        ),
    ] = None,
    year_min: Annotated[int | None, Query(ge=1000, le=2200)] = None,
    year_max: Annotated[int | None, Query(ge=1000, le=2200)] = None,
) -> dict[str, Any]:
    filters = _filters(genres, year_min, year_max, None)
    wanted = Wanted(filters, mood)
    data = await file.read()
    if not data:
        raise HTTPException(422, "file: empty upload")
    api = res.settings.api
    limits = ClipLimits(api.identify_max_seconds, api.identify_max_channels)
    try:
        return await identify(
            res.engine, res.bundle, res.bundle.fingerprint, data, _n(res, n), limits, wanted
        )
    except (ClipError, ClipWanted) as exc:
        raise HTTPException(422, str(exc)) from exc
