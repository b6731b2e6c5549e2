"""The link prober against a real local HTTP server that answers 200, 301, 401, 404,
500, refuses HEAD, and never answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from models.events import LinkStatus
from streams.prober import ProbeConfig, Prober


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    hits: dict[str, int] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hits[name] = hits.get(name, 0) + 1
        if name == "ok":
            return web.Response(body=b"RIFF....")
        if name == "moved":
            raise web.HTTPMovedPermanently("/audio/ok")
        if name == "auth":
            raise web.HTTPUnauthorized()
        if name == "gone":
            raise web.HTTPNotFound()
        if name == "error":
            raise web.HTTPInternalServerError()
        if name == "nohead":
            if request.method == "HEAD":
                raise web.HTTPMethodNotAllowed("HEAD", ["GET"])
            assert request.headers["Range"] == "bytes=0-1023"
            return web.Response(status=206, body=b"x" * 1024)
        await asyncio.sleep(3600)  # "hang": never answers
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/audio/{name}", handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/audio", hits
    await runner.cleanup()


async def test_each_answer_maps_to_its_link_status(server: tuple[str, dict[str, int]]) -> None:
    base, hits = server
    config = ProbeConfig(timeout_s=0.3, retries=1, backoff_s=0.05, per_host_interval_s=0.01)
    async with Prober(config) as prober:
        checks = await prober.check_all(
            [
                (name, f"{base}/{name}")
                for name in ("ok", "moved", "auth", "gone", "error", "nohead", "hang")
            ]
        )
    got = {c.track_id: (c.status, c.http_code, c.redirect_url) for c in checks}
    assert got["ok"] == (LinkStatus.VALID, 200, None)
    assert got["moved"] == (LinkStatus.MOVED, 301, f"{base}/ok")
    assert got["auth"] == (LinkStatus.REQUIRES_AUTH, 401, None)
    assert got["gone"] == (LinkStatus.DEAD, 404, None)
    assert got["error"] == (LinkStatus.UNKNOWN, 500, None)
    assert got["nohead"] == (LinkStatus.VALID, 206, None)
    assert got["hang"] == (LinkStatus.UNKNOWN, None, None)
    assert hits["error"] == 2  # transient: retried once
    assert hits["hang"] == 2
    assert hits["gone"] == 1  # definitive: not retried
    assert all(c.latency_ms is not None and c.latency_ms >= 0 for c in checks)


async def test_one_host_is_asked_one_request_at_a_time_with_spacing(
    server: tuple[str, dict[str, int]],
) -> None:
    base, _ = server
    config = ProbeConfig(concurrency=8, per_host_interval_s=0.05)
    loop = asyncio.get_running_loop()
    async with Prober(config) as prober:
        t0 = loop.time()
        await prober.check_all([(f"t{i}", f"{base}/ok") for i in range(6)])
        elapsed = loop.time() - t0
    assert elapsed >= 5 * 0.05  # six requests to one host, spaced by the interval


async def test_only_http_links_are_due_for_probing(redis_server: Any) -> None:
    """A ``file://`` link is an operator's local file: never probed over HTTP (probing
    it would fail three times and mark the track dead)."""
    import orjson

    from models.io.redis_store import RedisStore, connect
    from models.keys import Keys
    from streams.prober import due_links
    from tests.streamkit import redis_db_url

    url = redis_db_url(redis_server.address, 13)
    store = RedisStore(connect(url))
    keys = Keys("enc", 0, 6)
    links = {
        "web": "https://cdn.example.com/a.mp3",
        "plain": "http://cdn.example.com/b.ogg",
        "local": "file:///srv/music/c.flac",
        "odd": "ftp://example.com/d.mp3",
    }
    try:
        await store.client.flushdb()
        for track, link in links.items():
            await store.client.hset(keys.track(track), "meta", orjson.dumps({"audio_url": link}))
        due = await due_links(store, keys, recheck_s=60, now_ms=10**13)
        assert sorted(due) == [("plain", links["plain"]), ("web", links["web"])]
    finally:
        await store.client.flushdb()
        await store.close()
