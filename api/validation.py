"""Request validation that cannot itself fail: strict JSON bodies and bounded 422 answers.

* Bodies are parsed with orjson (:class:`StrictJSONRoute`), which refuses what
  Python's ``json`` module lets through: ``NaN`` and ``Infinity``, numbers beyond
  the float range (``1e400``) and lone surrogates (``"\\ud800"``). Such a body gets
  a 422 ``json_invalid`` before any model sees it, so no route handles a value
  it cannot encode again (producing an event with a lone surrogate, answering
  with a NaN).
* Every 422 goes through :func:`validation_response`: at most
  :data:`MAX_ERRORS` errors, each with its location, type, message and at most
  :data:`MAX_INPUT` characters of the offending value (objects and lists are
  not echoed at all), with any character UTF-8 cannot carry escaped and any
  Python object repr reduced to its type name. A 1 MB request gets a small
  error, and the error is always encodable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import AfterValidator, ValidationError

MAX_ERRORS = 20
"""Most errors one 422 lists (the count of the rest is given)."""
MAX_INPUT = 100
"""Most characters of an offending value a 422 echoes."""
MAX_MESSAGE = 300
"""Most characters of one error message."""
MAX_LOC = 64
"""Most characters of one location part (a field name may come from the input)."""

_CLASS_REPR = re.compile(r"<class '([\w.]+)'>")
_OBJECT_REPR = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


class StrictJSONRequest(Request):
    """A request whose JSON body is parsed by orjson (no NaN, infinities, lone surrogates)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())  # JSONDecodeError: FastAPI's 422
        return self._json


class StrictJSONRoute(APIRoute):
    """An API route that reads its JSON body with :class:`StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def safe_text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, encodable as UTF-8, without object reprs."""
    cut = value[:limit] + ("…" if len(value) > limit else "")
    cut = cut.encode("utf-8", "backslashreplace").decode("utf-8")
    cut = _CLASS_REPR.sub(r"\1", cut)
    return _OBJECT_REPR.sub(r"\1", cut)


def _scalar(value: Any) -> Any:
    """An offending value as a 422 may echo it: a bounded scalar, or None for the rest."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else safe_text(str(value), MAX_INPUT)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return safe_text(value, MAX_INPUT)
    if isinstance(value, bytes):
        return safe_text(value.decode("utf-8", "replace"), MAX_INPUT)
    return None


def _loc(parts: Sequence[Any]) -> list[Any]:
    return [p if isinstance(p, int) else safe_text(str(p), MAX_LOC) for p in parts[:16]]


def bounded_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """The errors a 422 lists: bounded in number and size, always encodable."""
    out = []
    for err in list(errors)[:MAX_ERRORS]:
        item: dict[str, Any] = {
            "type": safe_text(str(err.get("type", "value_error")), MAX_LOC),
            "loc": _loc(err.get("loc", ())),
            "msg": safe_text(str(err.get("msg", "")), MAX_MESSAGE),
        }
        shown = _scalar(err.get("input"))
        if shown is not None:
            item["input"] = shown
        ctx = {
            safe_text(str(k), MAX_LOC): _scalar(v)
            for k, v in (err.get("ctx") or {}).items()
            if _scalar(v) is not None
        }
        if ctx:
            item["ctx"] = ctx
        out.append(item)
    return out


async def validation_response(_request: Request, exc: Exception) -> Response:
    """The 422 answer of any request validation error (FastAPI's ``detail`` list)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    body: dict[str, Any] = {"detail": bounded_errors(errors)}
    if len(errors) > MAX_ERRORS:
        body["more_errors"] = len(errors) - MAX_ERRORS
    return JSONResponse(body, status_code=422)


def query_error(exc: ValidationError, where: Callable[[tuple[Any, ...]], str]) -> Exception:
    """A model's validation error as the 422 of the query parameters it came from.

    ``where`` names the query parameter of an error location (a model-level error
    has an empty location)."""
    errors = [
        {**e, "loc": ("query", where(tuple(e["loc"])))} for e in exc.errors(include_url=False)
    ]
    return RequestValidationError(errors)


def comma_separated(max_items: int, max_chars: int) -> AfterValidator:
    """Validates a comma-separated query parameter: at most ``max_items`` non-empty items
    of at most ``max_chars`` characters each (the message says which limit was passed)."""

    def check(value: str | None) -> str | None:
        items = [v for v in (value or "").split(",") if v]
        if len(items) > max_items:
            raise ValueError(f"{len(items)} items; at most {max_items}")
        for i, item in enumerate(items):
            if len(item) > max_chars:
                raise ValueError(f"item {i + 1} has {len(item)} characters; at most {max_chars}")
        return value

    return AfterValidator(check)
