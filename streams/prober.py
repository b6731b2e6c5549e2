"""The link prober: checks tracks' audio URLs and emits link-check events.

HEAD first, falling back to a ranged GET (``Range: bytes=0-1023``) when HEAD is
refused; redirects are not followed (a redirect means MOVED). Bounded global
concurrency, one request at a time per host with a minimum spacing, a timeout
per request, and retries with exponential backoff for transient failures
(timeouts, connection errors, 5xx). Classification:

=====================  =================
answer                 status
=====================  =================
2xx                    VALID
301/302/303/307/308    MOVED (Location)
401/403/407            REQUIRES_AUTH
404/410, other 4xx     DEAD
5xx, timeout, refused  UNKNOWN (transient; the state machine counts the streak)
=====================  =================
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from models.events import LinkCheck, LinkStatus, utcnow
from models.keys import Keys
from models.urls import is_web

REDIRECTS = frozenset({301, 302, 303, 307, 308})
AUTH = frozenset({401, 403, 407})


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """Prober limits."""

    concurrency: int = 16
    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 0.5
    per_host_interval_s: float = 0.2


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of checking one URL."""

    status: LinkStatus
    http_code: int | None
    redirect_url: str | None
    latency_ms: float
    attempts: int
    error: str | None = None


def classify(code: int, location: str | None, url: str) -> tuple[LinkStatus, str | None]:
    """Status (and redirect target) of an HTTP answer."""
    if 200 <= code < 300:
        return LinkStatus.VALID, None
    if code in REDIRECTS and location:
        return LinkStatus.MOVED, urljoin(url, location)
    if code in AUTH:
        return LinkStatus.REQUIRES_AUTH, None
    if 400 <= code < 500:
        return LinkStatus.DEAD, None
    return LinkStatus.UNKNOWN, None


class Prober:
    """Checks URLs politely; use as an async context manager."""

    def __init__(
        self, config: ProbeConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or ProbeConfig()
        self.clock = clock
        self._global = asyncio.Semaphore(self.config.concurrency)
        self._hosts: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last: dict[str, float] = {}
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(self.config.timeout_s),
            headers={"User-Agent": "encore-link-prober/1"},
        )

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _request(self, url: str) -> httpx.Response:
        response = await self._client.head(url)
        if response.status_code in (405, 501):
            response = await self._client.get(url, headers={"Range": "bytes=0-1023"})
        return response

    async def check(self, url: str) -> Outcome:
        """Check one URL (with retries for transient failures)."""
        host = urlsplit(url).netloc
        attempts = 0
        started = self.clock()
        error: str | None = None
        while True:
            attempts += 1
            async with self._global, self._hosts[host]:
                wait = self._last.get(host, -1e9) + self.config.per_host_interval_s - self.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                t0 = self.clock()
                try:
                    response = await self._request(url)
                    code: int | None = response.status_code
                    location = response.headers.get("location")
                    error = None
                except httpx.HTTPError as exc:
                    code, location, error = None, None, f"{type(exc).__name__}: {exc}"[:200]
                finally:
                    self._last[host] = self.clock()
            latency = (self.clock() - t0) * 1000
            if code is not None:
                status, redirect = classify(code, location, url)
            else:
                status, redirect = LinkStatus.UNKNOWN, None
            transient = status is LinkStatus.UNKNOWN
            if not transient or attempts > self.config.retries:
                total = (self.clock() - started) * 1000
                return Outcome(status, code, redirect, latency if code else total, attempts, error)
            await asyncio.sleep(self.config.backoff_s * 2 ** (attempts - 1))

    async def check_all(self, targets: Sequence[tuple[str, str]]) -> list[LinkCheck]:
        """Check ``(track_id, url)`` pairs concurrently; one link-check event each."""

        async def one(track: str, url: str) -> LinkCheck:
            out = await self.check(url)
            return LinkCheck(
                event_id=f"probe-{uuid.uuid4().hex}",
                occurred_at=utcnow(),
                track_id=track,
                url=url,
                status=out.status,
                http_code=out.http_code,
                redirect_url=out.redirect_url,
                latency_ms=round(out.latency_ms, 3),
            )

        return list(await asyncio.gather(*(one(t, u) for t, u in targets)))


async def due_links(
    store: Any, keys: Keys, recheck_s: float, now_ms: int, limit: int = 10_000
) -> list[tuple[str, str]]:
    """Catalog tracks with an http(s) audio URL not checked within ``recheck_s`` seconds
    (a ``file://`` link names a local file an operator put in the catalog: there is
    nothing to probe over HTTP, and probing it would mark it dead)."""
    client = store.client
    candidates: list[tuple[str, str]] = []
    async for raw in client.scan_iter(match=keys.base + "t:*", count=1_000):
        key = raw.decode() if isinstance(raw, bytes) else raw
        track = key.split(":", 4)[-1]
        meta = await client.hget(key, "meta")
        url = orjson.loads(meta).get("audio_url") if meta else None
        if is_web(url):
            candidates.append((track, url))
        if len(candidates) >= limit:
            break
    due = []
    for track, url in candidates:
        last = await client.hget(keys.link(track), "last_checked_ms")
        if not last or now_ms - int(last) >= recheck_s * 1000:
            due.append((track, url))
    return due


async def probe_catalog(
    store: Any, keys: Keys, producer: Any, config: ProbeConfig, recheck_s: float
) -> int:
    """Check every due link once and send the link-check events; returns how many."""
    due = await due_links(store, keys, recheck_s, int(time.time() * 1000))
    if not due:
        return 0
    async with Prober(config) as prober:
        checks = await prober.check_all(due)
    await producer.send_events(checks)
    return len(checks)
