"""What a link in an event points at: a local file, or a host the server may fetch from.

Catalog events carry links. Two kinds must not come from the public API:

* ``file://`` links: batch training opens local audio files and the API serves
  them, so a client naming ``file:///etc/shadow`` would have the server read it.
  Local audio comes from operators (``encore load``, the topics), and even then
  only from the configured roots (:mod:`models.io.localaudio`).
* links to this network's own hosts: the link prober fetches every catalog
  ``audio_url``, so a client could make it knock on loopback, private or
  link-local addresses (a cloud metadata service at 169.254.169.254, a Redis on
  127.0.0.1). The check is on the link as written (IP literals in any notation
  the resolver accepts, ``localhost`` and single-label names); it does not
  resolve names.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import PurePosixPath
from typing import TypeGuard
from urllib.parse import unquote, urlsplit

_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")
_LOCAL_NAMES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")


def is_web(url: object) -> TypeGuard[str]:
    """Whether ``url`` is an http(s) link (any other value: no)."""
    return isinstance(url, str) and url[:8].lower().startswith(("http://", "https://"))


def file_path(url: str) -> PurePosixPath | None:
    """The absolute path a ``file://`` URL names (percent-escapes decoded), else None.

    Only ``file:///path`` and ``file://localhost/path`` name a local file; any other
    host, a relative path or a NUL byte gives None."""
    if url[:7].lower() != "file://":
        return None
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return None
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        return None
    return PurePosixPath(path)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a URL host spells, in any notation ``inet_aton`` reads (``127.1``)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is on the internet: global and not multicast (an IPv4-mapped
    IPv6 address is judged as the IPv4 address it carries)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def private_host(url: str) -> bool:
    """Whether an http(s) URL points at this network rather than the internet.

    Loopback, private, link-local, shared, reserved, unspecified and multicast
    addresses (IPv4-mapped IPv6 included), ``localhost`` and names under it, other
    local-only suffixes, and single-label names (intranet hosts)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return True  # an unparseable authority (a bad IPv6 literal): not a public host
    if not host:
        return True
    host = host.rstrip(".").lower()
    address = _address(host)
    if address is not None:
        return not public_address(address)
    if host == "localhost" or host.endswith(_LOCAL_NAMES):
        return True
    return "." not in host


def public_url_problem(url: str, fetched: bool) -> str | None:
    """Why the public API refuses a link in an event, or None.

    Every link: no ``file://``. A link the server fetches (``fetched``): no host
    of its own network either."""
    if url[:7].lower() == "file://":
        return "file:// links are not accepted here; local audio is added by an operator"
    if fetched and private_host(url):
        return "the link points at a loopback, private or link-local host"
    return None
