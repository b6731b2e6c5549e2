"""The beginning of each http(s) catalog audio link, fetched for batch jobs.

Features need the first 30 s, so only the first ``ENCORE_AUDIO_REMOTE_MAX_BYTES``
are asked for (``Range``) and read (a server may ignore ``Range``); decoders read
such a prefix of Ogg, MP3, FLAC or WAV. The catalog is data: anyone who can add
a track chooses the link, so a link is fetched only when every address its host
resolves to is public (or in ``ENCORE_AUDIO_REMOTE_ALLOW_NETWORKS``), checked
again on every redirect hop, which is followed here rather than by the client.
The connection goes to the checked addresses themselves (the name is not
resolved twice, and no proxy from the environment is used).

Each link gets a time limit, retries with exponential backoff after failures that
may pass (connection errors, 429, 5xx), and a cached copy revalidated with its
ETag / Last-Modified, so a run after the first downloads only what changed.
Fetches run on an event loop in their own thread, a bounded number at once,
while the caller decodes what has arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import queue
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx

from models.settings import AudioSettings, Settings
from models.urls import is_web, public_address

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_AUDIO_TYPES = ("application/ogg", "application/octet-stream")

Outcome = Literal["fetched", "cached", "refused", "failed"]


class _Failed(Exception):
    """The link gives no audio this run; another try would not change that."""


class _Refused(_Failed):
    """The link or the server's answer is not accepted (address, scheme, content type)."""


class _Transient(_Failed):
    """A failure that may pass: tried again after a pause."""


@dataclass(frozen=True)
class Remote:
    """How batch jobs fetch remote audio: the audio settings and the cache directory."""

    settings: AudioSettings
    cache_dir: Path

    @classmethod
    def of(cls, settings: Settings) -> Remote:
        """The configured cache directory, else ``audio-cache`` in the run directory."""
        audio = settings.audio
        return cls(audio, audio.remote_cache_dir or Path(settings.run.dir) / "audio-cache")


@dataclass(frozen=True)
class Fetched:
    """One link's outcome: the file holding its first bytes, or why there is none."""

    outcome: Outcome
    path: Path | None = None
    reason: str = ""


def fetch_each(urls: Sequence[str], remote: Remote) -> Iterator[tuple[str, Fetched]]:
    """Fetch every (distinct) link and yield ``(url, outcome)`` as each completes.

    The event loop runs on its own thread so the caller can decode one file while
    the next ones download. Each link yields one outcome; an error of the loop
    itself (not of a link) is raised here once the thread has stopped, never a hang."""
    links = list(dict.fromkeys(urls))
    if not links:
        return
    remote.cache_dir.mkdir(parents=True, exist_ok=True)
    done: queue.Queue[tuple[str, Fetched] | None] = queue.Queue()
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_fetch_all(links, remote, done))
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            crashed.append(exc)
        finally:
            done.put(None)

    worker = threading.Thread(target=run, name="remote-audio")
    worker.start()
    try:
        yield from iter(done.get, None)
    finally:
        worker.join()
    if crashed:
        raise crashed[0]


async def _fetch_all(
    links: list[str], remote: Remote, done: queue.Queue[tuple[str, Fetched] | None]
) -> None:
    """Every link through one client, at most ``remote_concurrency`` at a time."""
    s = remote.settings
    slots = asyncio.Semaphore(s.remote_concurrency)
    timeout = httpx.Timeout(
        connect=s.remote_connect_timeout_s,
        read=s.remote_read_timeout_s,
        write=s.remote_read_timeout_s,
        pool=None,
    )
    async with httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        # No kept-alive connections: the pool knows a connection by address, and a TLS
        # one verified for one host name must not carry another name's request.
        limits=httpx.Limits(max_connections=s.remote_concurrency, max_keepalive_connections=0),
        headers={"Accept-Encoding": "identity", "User-Agent": "encore-batch"},
    ) as client:

        async def one(url: str) -> None:
            async with slots:
                done.put((url, await _fetch(client, url, remote)))

        await asyncio.gather(*(one(url) for url in links))


async def _fetch(client: httpx.AsyncClient, url: str, remote: Remote) -> Fetched:
    """One link within its total time limit, as an outcome (never an exception)."""
    s = remote.settings
    try:
        async with asyncio.timeout(s.remote_total_timeout_s):
            return await _with_retries(client, url, remote)
    except TimeoutError:
        return Fetched("failed", reason=f"remote: took longer than {s.remote_total_timeout_s:g} s")
    except _Refused as exc:
        return Fetched("refused", reason=f"remote: {exc}")
    except _Failed as exc:
        return Fetched("failed", reason=f"remote: {exc}")
    except httpx.TimeoutException as exc:
        return Fetched("failed", reason=f"remote: timed out ({type(exc).__name__})")
    except Exception as exc:  # noqa: BLE001 - one bad link never stops the batch
        return Fetched("failed", reason=f"remote: {type(exc).__name__}: {exc}")


async def _with_retries(client: httpx.AsyncClient, url: str, remote: Remote) -> Fetched:
    """Retry transient failures after 1, 2, 4... times the first pause."""
    s = remote.settings
    attempt = 0
    while True:
        try:
            return await _follow(client, url, remote)
        except _Transient:
            if attempt == s.remote_retries:
                raise
            await asyncio.sleep(s.remote_backoff_s * 2**attempt)
            attempt += 1


async def _follow(client: httpx.AsyncClient, url: str, remote: Remote) -> Fetched:
    """Request the prefix, following redirects one checked hop at a time."""
    body, meta = _cache_paths(remote.cache_dir, url)
    validators = _validators(body, meta, url, remote.settings.remote_max_bytes)
    headers = {"Range": f"bytes=0-{remote.settings.remote_max_bytes - 1}", **validators}
    hop = url
    for _ in range(MAX_REDIRECTS + 1):
        addresses = await _addresses(hop, remote.settings)
        response = await _send(client, hop, addresses, headers)
        try:
            status = response.status_code
            if status in _REDIRECTS:
                hop = _location(hop, response)
                continue
            if status == 304 and validators:
                return Fetched("cached", body)
            if status == 429 or status >= 500:
                raise _Transient(f"HTTP {status}")
            if status not in (200, 206):
                raise _Failed(f"HTTP {status}")
            await _receive(response, body, meta, url, remote.settings.remote_max_bytes)
            return Fetched("fetched", body)
        finally:
            await response.aclose()
    raise _Refused(f"more than {MAX_REDIRECTS} redirects")


async def _addresses(url: str, settings: AudioSettings) -> list[str]:
    """The addresses the link's host resolves to, refused unless every one of them
    may be fetched from."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise _Refused(f"bad link ({exc})") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise _Refused("not an http(s) link with a host")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise _Failed(f"cannot resolve {host} ({exc.strerror})") from exc
    found = [str(sockaddr[0]).split("%")[0] for *_, sockaddr in infos]
    for text in found:
        address = ipaddress.ip_address(text)
        if not _allowed(address, settings):
            raise _Refused(f"{host} is at non-public address {address}")
    return list(dict.fromkeys(found))


async def _send(
    client: httpx.AsyncClient, hop: str, addresses: list[str], headers: dict[str, str]
) -> httpx.Response:
    """Connect to the checked addresses in turn, not to the name again (whose next
    answer could be another address); the name still goes in ``Host`` and, for
    https, in SNI, against which the certificate is verified."""
    url = httpx.URL(hop)
    named = {**headers, "Host": url.netloc.decode("ascii")}
    tls = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    for address in addresses:
        request = client.build_request(
            "GET", url.copy_with(host=address), headers=named, extensions=tls
        )
        try:
            return await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if address == addresses[-1]:
                raise _Transient(f"cannot connect ({type(exc).__name__})") from exc
    raise _Failed("no address to connect to")


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, s: AudioSettings) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return public_address(address) or any(address in net for net in s.remote_allow_networks)


def _location(hop: str, response: httpx.Response) -> str:
    """The next hop of a redirect: an http(s) link, relative ones resolved."""
    location = response.headers.get("location")
    if not location:
        raise _Failed(f"HTTP {response.status_code} without a Location")
    target = urljoin(hop, location)
    if not is_web(target):
        raise _Refused("redirect to a link that is not http(s)")
    return target


async def _receive(
    response: httpx.Response, body: Path, meta: Path, url: str, max_bytes: int
) -> None:
    """Store at most ``max_bytes`` of an audio answer and its validators in the cache."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (kind.startswith("audio/") or kind in _AUDIO_TYPES):
        raise _Refused(f"wrong content type {kind or '(none)'}")
    part = body.with_suffix(".part")
    size = 0
    try:
        with part.open("wb") as out:
            async for chunk in response.aiter_bytes():
                out.write(chunk[: max_bytes - size])
                size += len(chunk)
                if size >= max_bytes:
                    break
    except httpx.RemoteProtocolError as exc:
        part.unlink(missing_ok=True)
        raise _Failed("the connection closed before the body ended") from exc
    if size == 0:
        part.unlink(missing_ok=True)
        raise _Failed("empty body")
    found = {k: response.headers[k] for k in ("etag", "last-modified") if k in response.headers}
    _commit(part, body, meta, {"url": url, "max_bytes": max_bytes, **found} if found else None)


def _commit(part: Path, body: Path, meta: Path, saved: dict[str, Any] | None) -> None:
    """Replace the cached bytes, then their validators (none: nothing to revalidate).

    Small local writes, done on the fetch loop's own thread; the old validators go
    first so they never describe other bytes."""
    meta.unlink(missing_ok=True)
    os.replace(part, body)
    if saved is not None:
        meta.write_text(json.dumps(saved))


def _cache_paths(cache_dir: Path, url: str) -> tuple[Path, Path]:
    key = hashlib.sha256(url.encode()).hexdigest()
    return cache_dir / f"{key}.audio", cache_dir / f"{key}.json"


def _validators(body: Path, meta: Path, url: str, max_bytes: int) -> dict[str, str]:
    """Conditional headers for the cached copy of ``url``, if there is one fetched with
    the same byte cap (a different cap needs different bytes)."""
    if not body.is_file():
        return {}
    try:
        saved = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}
    if saved.get("url") != url or saved.get("max_bytes") != max_bytes:
        return {}
    headers = {}
    if "etag" in saved:
        headers["If-None-Match"] = saved["etag"]
    if "last-modified" in saved:
        headers["If-Modified-Since"] = saved["last-modified"]
    return headers
