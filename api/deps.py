"""Request dependencies: resources and API-key checks (swap with ``dependency_overrides``)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from api.state import Resources
from models.settings import DEV_KEYS, Mode, Settings

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Encore API key")


def resources(request: Request) -> Resources:
    """The process's resources, created by the lifespan."""
    return request.app.state.resources  # type: ignore[no-any-return]


Res = Annotated[Resources, Depends(resources)]


def _digests(keys: list[str]) -> list[str]:
    out = []
    for k in keys:
        out.append(k[7:] if k.startswith("sha256:") else hashlib.sha256(k.encode()).hexdigest())
    return out


def key_matches(given: str | None, configured: list[str]) -> bool:
    """Constant-time check of a key against configured plain or ``sha256:`` keys."""
    if not given:
        return False
    digest = hashlib.sha256(given.encode()).hexdigest()
    return any(hmac.compare_digest(digest, d) for d in _digests(configured))


def _keys(settings: Settings, admin: bool) -> list[str]:
    configured = settings.api.admin_keys if admin else settings.api.api_keys
    keys = [k.get_secret_value() for k in configured]
    if not keys and settings.mode is Mode.DEVELOPMENT:
        keys = sorted(DEV_KEYS) if not admin else ["dev-admin-key"]
    if admin is False:  # an admin key may also ingest
        keys += [k.get_secret_value() for k in settings.api.admin_keys]
    return keys


def require_ingest(res: Res, key: Annotated[str | None, Depends(_header)]) -> None:
    """Ingest routes need an API key."""
    if not key_matches(key, _keys(res.settings, admin=False)):
        raise HTTPException(401, "missing or unknown X-API-Key", {"WWW-Authenticate": "ApiKey"})


def require_admin(res: Res, key: Annotated[str | None, Depends(_header)]) -> None:
    """Admin routes need an admin key."""
    if not key_matches(key, _keys(res.settings, admin=True)):
        raise HTTPException(
            401, "missing or unknown admin X-API-Key", {"WWW-Authenticate": "ApiKey"}
        )


def require_read(res: Res, key: Annotated[str | None, Depends(_header)]) -> None:
    """Read routes are open unless ``ENCORE_API_READ_REQUIRES_KEY`` is set."""
    if res.settings.api.read_requires_key:
        require_ingest(res, key)


ReadAccess = Depends(require_read)
IngestAccess = Depends(require_ingest)
AdminAccess = Depends(require_admin)
