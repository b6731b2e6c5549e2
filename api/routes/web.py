"""The web page (``/``: discover, mood search and map, track pages, identify, operator
panel) and the two small routes it needs beyond the public API."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse

from api.deps import ReadAccess, Res
from api.validation import StrictJSONRoute
from models.settings import Mode

router = APIRouter(route_class=StrictJSONRoute)
WEB = Path(__file__).resolve().parent.parent / "web"
TYPES = {".js": "text/javascript", ".css": "text/css"}
ASSETS = {p.name: TYPES[p.suffix] for p in sorted(WEB.iterdir()) if p.suffix in TYPES}
"""The page's scripts (ES modules) and stylesheet; nothing else under api/web is served."""
NO_CACHE = {"Cache-Control": "no-cache"}
# The page loads only its own script and style, and talks only to this server.
CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' http: https:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(
        WEB / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**NO_CACHE, "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/web/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "no such web asset")
    return FileResponse(
        WEB / name,
        media_type=f"{ASSETS[name]}; charset=utf-8",
        headers={**NO_CACHE, "X-Content-Type-Options": "nosniff"},
    )


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine (127.0.0.0/8, ::1, IPv4-mapped too)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@router.get("/v1/ui/config", tags=["web"], summary="What the web page may prefill")
async def ui_config(request: Request, res: Res) -> dict[str, Any]:
    """The built-in development keys, only to a client on this machine, in development
    mode with no keys configured: the page of a developer's own stack fills them in,
    anyone else asking a development server gets nothing."""
    api = res.settings.api
    open_dev = res.settings.mode is Mode.DEVELOPMENT and not api.api_keys and not api.admin_keys
    local = is_loopback(request.client.host if request.client else None)
    return {
        "dev_keys": {"ingest": "dev-ingest-key", "admin": "dev-admin-key"}
        if open_dev and local
        else None
    }


@router.get(
    "/v1/catalog/moods",
    tags=["web"],
    dependencies=[ReadAccess],
    summary="Valence and arousal of catalog tracks (for the mood map)",
)
async def catalog_moods(
    res: Res, limit: Annotated[int, Query(ge=1, le=20_000)] = 2_000
) -> list[dict[str, Any]]:
    """At most ``limit`` tracks of the content model, spread evenly over the catalog."""
    content = res.bundle.content
    if content is None:
        raise HTTPException(
            503, "no content model is loaded yet: the mood map needs a published content artifact"
        )
    total = len(content.ids)
    step = max(1.0, total / limit)
    rows = sorted({int(i * step) for i in range(min(limit, total))})
    out = []
    for r in rows:
        item = content.items[r]
        v, a = content.mood[r]
        out.append(
            {
                "track_id": content.ids[r],
                "title": item.get("title"),
                "artist": item.get("artist"),
                "genre": item.get("genre"),
                "valence": round(float(v), 3),
                "arousal": round(float(a), 3),
            }
        )
    return out
