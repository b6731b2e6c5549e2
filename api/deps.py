"""Request dependencies (swap with ``app.dependency_overrides`` in tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.state import Resources


def resources(request: Request) -> Resources:
    """The process's resources, created by the lifespan."""
    return request.app.state.resources  # type: ignore[no-any-return]


Res = Annotated[Resources, Depends(resources)]
