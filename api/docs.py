"""``/docs``: Swagger UI served from this server, loading nothing from anywhere else.

FastAPI's default page loads Swagger UI's script and style from a CDN (and ReDoc
also a web font), so every visit to the docs runs third-party code next to the
API keys the page may hold, and shows nothing on a machine without internet.
Here the page's assets come from the ``swagger-ui-py`` package, served under
``/docs/assets/``, the page's Content-Security-Policy allows scripts, styles,
images and requests from this origin only, and Swagger UI's spec validator
(an image from validator.swagger.io) is off. ReDoc (``/redoc``) is not served.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
"""The files the page loads; nothing else of the package is served."""
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
"""Swagger UI starts from one inline script (FastAPI's page); everything else is ours."""


def assets_dir() -> Path | None:
    """The static folder of the installed ``swagger-ui-py`` (found without importing it)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@router.get("/docs")
async def docs() -> HTMLResponse:
    if assets_dir() is None:
        raise HTTPException(503, "the API docs page needs the swagger-ui-py package")
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Encore API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon-32x32.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = CSP
    page.headers["Cache-Control"] = "no-cache"
    return page


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    folder = assets_dir()
    if name not in ASSETS or folder is None:
        raise HTTPException(404, "no such docs asset")
    return FileResponse(
        folder / name,
        media_type=ASSETS[name],
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
