"""The HTTP server's limits, against a real `serve --role web` process on loopback, spoken to
with raw sockets (an HTTP client library would not send slowly or badly on purpose).

The server runs with small limits so the tests are quick: 8 connections, 1 s for headers, 2 s
for a body, 64 KiB bodies.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from bridge.store.db import create_engine
from bridge.webhooks import WebhookReceiver
from tests.loopback import free_port
from tests.signer import signed_headers

SECRET = "ws_limits_test_0123456789abcdef"
MAX_CONNECTIONS = 8
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
MAX_BODY = 65_536
SLACK = 1.5  # seconds a cut-off may come late on a busy 2-core machine


@dataclass
class Bridge:
    port: int
    pid: int

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def start(tmp: Path, **limits: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp}/bridge.db",
        "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
        "BRIDGE_ADMIN_PASSWORD": "a-long-admin-password-for-tests",
        "WHOP_WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "ERROR",
        **limits,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "--role", "web", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("serve did not start")


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bridge]:
    proc, port = start(
        tmp_path_factory.mktemp("limits"),
        BRIDGE_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        BRIDGE_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        BRIDGE_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        BRIDGE_MAX_BODY_BYTES=str(MAX_BODY),
    )
    try:
        yield Bridge(port, proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server says until it closes (or `limit` seconds pass), and when it closed."""
    started = time.monotonic()
    got = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    return got, time.monotonic() - started


def status_of(answer: bytes) -> int | None:
    line = answer.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else None


def webhook_head(port: int, length: int | None) -> bytes:
    size = "transfer-encoding: chunked" if length is None else f"content-length: {length}"
    return f"POST /webhooks/whop HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{size}\r\n\r\n".encode()


def wait_for_idle_server(bridge: Bridge) -> None:
    """Connections of an earlier test may take a moment to be let go."""
    time.sleep(HEADER_TIMEOUT + 0.5)


def test_a_connection_that_never_sends_a_request_is_closed_after_the_header_timeout(bridge: Bridge) -> None:
    with bridge.connect() as sock:
        answer, took = read_until_closed(sock, 30)
    assert status_of(answer) == 408
    assert HEADER_TIMEOUT - 0.2 <= took <= HEADER_TIMEOUT + SLACK


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout(bridge: Bridge) -> None:
    head = webhook_head(bridge.port, 10)
    with bridge.connect() as sock:
        started = time.monotonic()
        answer = b""
        for byte in head[:-4]:  # never the blank line that ends the headers
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            sock.settimeout(0.1)
            try:
                answer = sock.recv(1024)
                break
            except TimeoutError:
                continue
        took = time.monotonic() - started
    assert status_of(answer) == 408
    assert took <= HEADER_TIMEOUT + SLACK


def test_a_body_that_trickles_in_is_cut_off_at_the_body_timeout(bridge: Bridge) -> None:
    with bridge.connect() as sock:
        sock.sendall(webhook_head(bridge.port, 5000))
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < BODY_TIMEOUT + 10:
            try:
                sock.sendall(b"x" * 10)
                sock.settimeout(0.2)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        took = time.monotonic() - started
    assert closed
    assert BODY_TIMEOUT - 0.2 <= took <= BODY_TIMEOUT + SLACK


def test_a_declared_body_over_the_limit_is_refused_before_any_of_it_is_sent(bridge: Bridge) -> None:
    with bridge.connect() as sock:
        sock.sendall(webhook_head(bridge.port, 1_048_575))  # just under 1 MiB, and not a byte of it
        answer, took = read_until_closed(sock, 10)
    assert status_of(answer) == 413
    assert took < 1.0


def test_a_chunked_body_is_refused_once_it_passes_the_limit_and_the_connection_ends(bridge: Bridge) -> None:
    piece = 8192
    with bridge.connect() as sock:
        sock.sendall(webhook_head(bridge.port, None))
        sent = 0
        answer = b""
        sock.settimeout(0.05)
        while sent < 16 * MAX_BODY:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (piece, b"x" * piece))
            except OSError:
                break
            sent += piece
            try:
                answer = sock.recv(1024)
                break
            except TimeoutError:
                continue
        rest, _ = read_until_closed(sock, 10)
        answer += rest
    assert status_of(answer) == 413
    # Answered as the limit was passed, not after the whole body (what the client had in flight).
    assert sent <= MAX_BODY + 4 * piece


def test_headers_larger_than_the_cap_are_refused(bridge: Bridge) -> None:
    with bridge.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: " + b"a" * 40_000 + b"\r\n\r\n")
        answer, _ = read_until_closed(sock, 10)
    assert status_of(answer) == 431


def test_connections_over_the_cap_are_refused_at_once_and_served_again_when_freed(bridge: Bridge) -> None:
    wait_for_idle_server(bridge)
    held = [bridge.connect() for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        with bridge.connect() as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            answer, took = read_until_closed(extra, 10)
        assert status_of(answer) == 503 and b"retry-after: 5" in answer.lower()
        assert took < 1.0
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"http://127.0.0.1:{bridge.port}/healthz", timeout=5).status_code == 200


def test_signed_deliveries_and_keep_alive_requests_pass_untouched(bridge: Bridge) -> None:
    wait_for_idle_server(bridge)
    with httpx.Client(base_url=f"http://127.0.0.1:{bridge.port}", timeout=10) as client:
        for n in range(3):
            body = b'{"type":"membership.updated","data":{"id":"mem_%d"}}' % n
            headers = signed_headers(SECRET, body, webhook_id=f"msg_keepalive_{n}")
            response = client.post("/webhooks/whop", content=body, headers=headers)
            assert response.status_code == 200, response.text
            # Idle longer than the header timeout between requests, within keep-alive (5 s):
            # the header deadline starts with a request's first byte, not when the last ended.
            time.sleep(HEADER_TIMEOUT + 0.5)
        near_limit = b'{"type":"x","pad":"' + b"a" * (MAX_BODY - 100) + b'"}'
        headers = signed_headers(SECRET, near_limit, webhook_id="msg_near_limit")
        assert client.post("/webhooks/whop", content=near_limit, headers=headers).status_code == 200


def test_a_websocket_upgrade_is_answered_as_plain_http(bridge: Bridge) -> None:
    """No route speaks WebSocket, so an upgrade never leaves the limits above for another protocol."""
    with bridge.connect() as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
            b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        sock.settimeout(5)
        answer = sock.recv(4096)
    assert status_of(answer) == 200


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_150_clients_each_sending_just_under_a_mebibyte_leave_memory_flat(tmp_path: Path) -> None:
    """Issue 13's attack at the default limits: before them the bridge grew by about 150 MB."""
    proc, port = start(tmp_path)
    try:
        time.sleep(0.5)
        before = rss_mb(proc.pid)
        peak = before
        socks: list[socket.socket] = []
        for n in range(150):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(sock)
            # Half declare their size; half stream chunks with no Content-Length.
            sock.sendall(webhook_head(port, 1_048_575 if n % 2 else None))
        piece = b"a" * 32768
        for _ in range(32):  # just under 1 MiB each, over a few seconds
            for n, sock in enumerate(socks):
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if n % 2 == 0 else piece)
                except OSError:
                    continue  # refused and closed: what the server should do
            peak = max(peak, rss_mb(proc.pid))
            time.sleep(0.05)
        for sock in socks:
            sock.close()
    finally:
        proc.terminate()
        proc.wait(15)
    assert peak - before < 20, f"RSS grew {peak - before:.0f} MB (from {before:.0f} MB)"


async def test_bodies_being_read_at_once_are_held_to_a_shared_budget_and_released() -> None:
    """Many slow senders under the size limit still cannot add up: past the budget a delivery
    is answered 503 (Whop delivers it again), and what a request held is given back."""
    engine = create_engine("sqlite:///:memory:")
    receiver = WebhookReceiver(engine, [SECRET], max_body=4096)
    receiver.max_buffered = 5000
    release = asyncio.Event()

    async def deliver(first: bytes, rest_after: asyncio.Event | None) -> dict[str, Any]:
        """One request through the receiver: `first` of its body, then the end of it."""
        parts = [first]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if parts:
                return {"type": "http.request", "body": parts.pop(), "more_body": True}
            if rest_after is not None:
                await rest_after.wait()
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/webhooks/whop", "query_string": b"", "headers": []}
        await receiver(scope, receive, send)
        return sent[0]

    slow = asyncio.ensure_future(deliver(b"a" * 3000, release))
    await asyncio.sleep(0.05)
    assert receiver.buffered == 3000
    second = await deliver(b"b" * 3000, None)
    assert second["status"] == 503 and (b"retry-after", b"5") in second["headers"]
    release.set()
    assert (await slow)["status"] == 401  # read whole, then judged on its signature
    assert receiver.buffered == 0
    await engine.dispose()
