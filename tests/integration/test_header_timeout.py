"""A client that never finishes its request headers cannot hold a connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI

from api.server import HeaderTimeoutProtocol
from encore.services import free_port

TIMEOUT_S = 0.5


@pytest.fixture
def server() -> Iterator[int]:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    port = free_port()
    HeaderTimeoutProtocol.header_timeout_s = TIMEOUT_S
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=HeaderTimeoutProtocol, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(10)
        HeaderTimeoutProtocol.header_timeout_s = 10.0


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes the connection within ``seconds`` (recv gives b"")."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


def test_unfinished_headers_are_cut_off_and_whole_requests_are_served(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as idle:  # opens, sends nothing
        assert _closed_within(idle, TIMEOUT_S * 6)
    with socket.create_connection(("127.0.0.1", server)) as slow:  # a header line now and then
        slow.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < TIMEOUT_S * 6 and not closed:
            try:
                slow.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            closed = _closed_within(slow, TIMEOUT_S / 5)
        assert closed
        assert time.monotonic() - started < TIMEOUT_S * 6
    with socket.create_connection(("127.0.0.1", server)) as ok:  # keep-alive: two requests
        for _ in range(2):
            ok.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            ok.settimeout(5)
            reply = ok.recv(4096)
            assert reply.startswith(b"HTTP/1.1 200")
            time.sleep(TIMEOUT_S * 1.5)  # idle between requests longer than the header deadline
        ok.sendall(b"GET /ping HTTP/1.1\r\n")  # a third request that never finishes
        assert _closed_within(ok, TIMEOUT_S * 6)
