"""Remote audio for batch jobs, fetched from a real HTTP server on loopback serving a
packaged Opus clip: the byte cap, timeouts, content types, redirects, retries, the
address checks, the validator cache and the bound on fetches in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batch.remote_audio import Fetched, Remote, fetch_each
from models.settings import AudioSettings

pytest.importorskip("immich_memories_music", reason="the packaged clips need the data extra")
CAP = 200_000  # about 11 s of the packaged Opus clips
ETAG = '"clip-v1"'


class Server:
    """A loopback HTTP server whose routes are small functions; it records every
    request (path, headers, status) and the most requests it handled at once."""

    def __init__(self, clip: bytes) -> None:
        self.clip = clip
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.statuses: list[int] = []
        self.active = self.max_active = 0
        self.together = threading.Condition()
        self.release = threading.Event()
        self.routes: dict[str, Callable[[Handler], None]] = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def hits(self, path: str) -> int:
        return sum(p == path for p, _ in self.requests)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        server: Server = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        with server.together:
            server.requests.append((path, dict(self.headers)))
            server.active += 1
            server.max_active = max(server.max_active, server.active)
            server.together.notify_all()
        try:
            server.routes.get(path, _not_found)(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its cap
        finally:
            with server.together:
                server.active -= 1

    def reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.server.owner.statuses.append(status)  # type: ignore[attr-defined]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def _not_found(h: Handler) -> None:
    h.reply(404, {"Content-Length": "0"})


def _clip(h: Handler) -> None:
    """The clip with Range and ETag, as a CDN serves it."""
    clip = h.server.owner.clip  # type: ignore[attr-defined]
    if h.headers.get("If-None-Match") == ETAG:
        h.reply(304, {"ETag": ETAG})
        return
    end = int(h.headers["Range"].removeprefix("bytes=0-")) + 1
    part = clip[:end]
    headers = {"Content-Type": "audio/ogg", "ETag": ETAG, "Content-Length": str(len(part))}
    h.reply(206, {**headers, "Content-Range": f"bytes 0-{len(part) - 1}/{len(clip)}"}, part)


def _whole(h: Handler) -> None:
    """Range ignored: the whole file."""
    clip = h.server.owner.clip  # type: ignore[attr-defined]
    h.reply(200, {"Content-Type": "audio/ogg", "Content-Length": str(len(clip))}, clip)


def _stall(h: Handler) -> None:
    """Headers and a few bytes, then nothing until the test ends."""
    h.reply(200, {"Content-Type": "audio/ogg", "Content-Length": "500000"}, b"OggS" * 100)
    h.wfile.flush()
    h.server.owner.release.wait(60)  # type: ignore[attr-defined]


def _truncated(h: Handler) -> None:
    """Promises the whole file, sends 50 kB and closes the connection."""
    clip = h.server.owner.clip  # type: ignore[attr-defined]
    h.reply(200, {"Content-Type": "audio/ogg", "Content-Length": str(len(clip))}, clip[:50_000])


def _page(h: Handler) -> None:
    h.reply(200, {"Content-Type": "text/html; charset=utf-8", "Content-Length": "6"}, b"<html>")


def _redirect(to: str) -> Callable[[Handler], None]:
    return lambda h: h.reply(302, {"Location": to, "Content-Length": "0"})


def _flaky(h: Handler) -> None:
    """503 the first time, the clip after."""
    if h.server.owner.hits("/flaky.opus") == 1:  # type: ignore[attr-defined]
        h.reply(503, {"Content-Length": "0"})
    else:
        _clip(h)


def _together(h: Handler) -> None:
    """Holds each request until two have been in flight at once (or 30 s pass)."""
    server: Server = h.server.owner  # type: ignore[attr-defined]
    with server.together:
        server.together.wait_for(lambda: server.max_active >= 2, timeout=30)
    _clip(h)


@pytest.fixture(scope="module")
def clip_path() -> Path:
    from batch import audio_sources

    return sorted(c.path for c in audio_sources.clips())[0]


@pytest.fixture
def server(clip_path: Path) -> Iterator[Server]:
    s = Server(clip_path.read_bytes())
    s.routes.update(
        {
            "/clip.opus": _clip,
            "/whole.opus": _whole,
            "/stall.opus": _stall,
            "/truncated.opus": _truncated,
            "/page": _page,
            "/moved": _redirect("/clip.opus"),
            "/to-metadata": _redirect("http://169.254.169.254/latest/meta-data/"),
            "/to-file": _redirect("file:///etc/passwd"),
            "/flaky.opus": _flaky,
            "/together.opus": _together,
        }
    )
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    yield s
    s.release.set()
    s.httpd.shutdown()
    s.httpd.server_close()


def remote(tmp_path: Path, **settings: Any) -> Remote:
    values: dict[str, Any] = {
        "remote_allow_networks": ["127.0.0.0/8"],
        "remote_max_bytes": CAP,
        "remote_read_timeout_s": 30.0,
        "remote_backoff_s": 0.01,
        **settings,
    }
    return Remote(AudioSettings(**values), tmp_path / "cache")


def fetch(url: str, r: Remote) -> Fetched:
    [(got_url, got)] = list(fetch_each([url], r))
    assert got_url == url
    return got


def test_features_of_a_remote_link_match_the_same_prefix_read_locally(
    server: Server, clip_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("librosa", reason="audio analysis needs the ml extra")
    from batch import audio

    r = remote(tmp_path)
    pool = audio.Decoding(workers=2)  # decoded in a worker process while the fetcher runs
    result = audio.analyse([("t", f"{server.base}/clip.opus")], remote=r, decoding=pool)
    assert (result.fetched, result.cached, result.refused, result.failed) == (1, 0, 0, 0)
    assert result.errors == {}
    assert len(result.hashes["t"][0]) > 0  # fingerprints from the same decode
    assert server.requests[0][1]["Range"] == f"bytes=0-{CAP - 1}"
    assert server.statuses == [206]
    assert 8.0 < result.seconds < 15.0  # the prefix, not the whole 30 s clip
    local = audio.load(clip_path, audio.SAMPLE_RATE, result.seconds)
    expected = audio.extract(local)
    np.testing.assert_allclose(result.features["t"], expected, rtol=1e-3, atol=1e-4)
    assert result.remote_info() == {
        "remote_audio_fetched": 1,
        "remote_audio_cached": 0,
        "remote_audio_refused": 0,
        "remote_audio_failed": 0,
    }


def test_a_server_that_ignores_range_is_read_only_up_to_the_cap(
    server: Server, clip_path: Path, tmp_path: Path
) -> None:
    got = fetch(f"{server.base}/whole.opus", remote(tmp_path))
    assert got.outcome == "fetched"
    assert got.path is not None
    assert got.path.read_bytes() == clip_path.read_bytes()[:CAP]


def test_a_stalled_body_times_out_with_a_reason(server: Server, tmp_path: Path) -> None:
    got = fetch(f"{server.base}/stall.opus", remote(tmp_path, remote_read_timeout_s=0.3))
    assert (got.outcome, got.reason) == ("failed", "remote: timed out (ReadTimeout)")
    whole = fetch(f"{server.base}/stall.opus", remote(tmp_path, remote_total_timeout_s=0.5))
    assert (whole.outcome, whole.reason) == ("failed", "remote: took longer than 0.5 s")


def test_a_body_cut_short_is_a_clear_error(server: Server, tmp_path: Path) -> None:
    got = fetch(f"{server.base}/truncated.opus", remote(tmp_path))
    assert (got.outcome, got.path) == ("failed", None)
    assert got.reason == "remote: the connection closed before the body ended"
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-written is kept


def test_a_page_is_refused_for_its_content_type(server: Server, tmp_path: Path) -> None:
    got = fetch(f"{server.base}/page", remote(tmp_path))
    assert (got.outcome, got.reason) == ("refused", "remote: wrong content type text/html")


def test_redirects_are_followed_and_each_hop_is_checked(server: Server, tmp_path: Path) -> None:
    r = remote(tmp_path)
    moved = fetch(f"{server.base}/moved", r)
    assert moved.outcome == "fetched"
    assert [p for p, _ in server.requests] == ["/moved", "/clip.opus"]
    metadata = fetch(f"{server.base}/to-metadata", r)
    assert metadata.outcome == "refused"
    assert metadata.reason == "remote: 169.254.169.254 is at non-public address 169.254.169.254"
    to_file = fetch(f"{server.base}/to-file", r)
    assert (to_file.outcome, to_file.reason) == (
        "refused",
        "remote: redirect to a link that is not http(s)",
    )


def test_a_503_is_retried_and_a_404_is_not(server: Server, tmp_path: Path) -> None:
    r = remote(tmp_path, remote_retries=3)
    assert fetch(f"{server.base}/flaky.opus", r).outcome == "fetched"
    assert server.hits("/flaky.opus") == 2
    missing = fetch(f"{server.base}/missing.opus", r)
    assert (missing.outcome, missing.reason) == ("failed", "remote: HTTP 404")
    assert server.hits("/missing.opus") == 1


def test_the_next_run_revalidates_and_reuses_the_cached_bytes(
    server: Server, tmp_path: Path
) -> None:
    r = remote(tmp_path)
    first = fetch(f"{server.base}/clip.opus", r)
    second = fetch(f"{server.base}/clip.opus", r)
    assert (first.outcome, second.outcome) == ("fetched", "cached")
    assert first.path == second.path
    assert second.path is not None
    assert second.path.stat().st_size == CAP
    assert "If-None-Match" not in server.requests[0][1]
    assert server.requests[1][1]["If-None-Match"] == ETAG
    assert server.statuses == [206, 304]
    smaller = fetch(f"{server.base}/clip.opus", remote(tmp_path, remote_max_bytes=CAP // 2))
    assert smaller.outcome == "fetched"  # another cap: other bytes, fetched afresh
    assert "If-None-Match" not in server.requests[2][1]


def test_fetches_in_flight_stay_within_the_bound(server: Server, tmp_path: Path) -> None:
    urls = [f"{server.base}/together.opus?n={i}" for i in range(8)]
    got = dict(fetch_each(urls, remote(tmp_path, remote_concurrency=2)))
    assert {g.outcome for g in got.values()} == {"fetched"}
    assert set(got) == set(urls)
    assert server.max_active == 2


def test_loopback_is_refused_unless_allowed_and_nothing_connects(
    server: Server, tmp_path: Path
) -> None:
    port = server.base.rsplit(":", 1)[1]
    r = remote(tmp_path, remote_allow_networks=[])
    for host in ("127.0.0.1", "localhost", "127.1", "[::1]"):
        got = fetch(f"http://{host}:{port}/clip.opus", r)
        assert got.outcome == "refused", host
        assert "is at non-public address" in got.reason
    assert server.requests == []
