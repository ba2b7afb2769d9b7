"""The HTTP server's limits, against a real `serve --role web` process on loopback, spoken to
with raw sockets (an HTTP client library would not send slowly or badly on purpose).

The server runs with small limits so the tests are quick: 8 connections, 1 s for headers, 2 s
for a body, 64 KiB bodies. Addresses 127.x other than 127.0.0.1 stand for other clients (Linux
routes all of 127.0.0.0/8 to loopback).

No test bounds how soon something happens: a busy machine may answer late. Which limit cut a
connection off is told by its answer and by what the client was still doing (a deadline that
a trickle kept moving would never cut it off); that it was not cut before its deadline is timed
from before the client connected, which a slow machine can only lengthen.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from cryptography.fernet import Fernet

from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.server import Limits, client_of, make_room
from bridge.store.db import create_engine
from bridge.webhooks import WebhookReceiver
from fakes.whop.signer import signed_headers
from tests.loopback import free_port

SECRET = "ws_limits_test_0123456789abcdef"
MAX_CONNECTIONS = 8
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
MAX_BODY = 65_536
GIVE_UP = 60  # seconds: only so that a limit that never cuts a connection off fails its test


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
    with httpx.Client(timeout=1) as http:  # one client for the polling: each new one costs CPU
        while time.monotonic() < deadline:
            try:
                http.get(f"http://127.0.0.1:{port}/healthz")
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


def connections_held(pid: int, port: int) -> int:
    """The client connections the server process still holds open on `port` (its listener aside)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except FileNotFoundError:
            continue  # closed while listed
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            held += inode in inodes and local_port == port and state != "0A"  # 0A: listening
    return held


def wait_for_idle_server(bridge: Bridge) -> None:
    """Connections of an earlier test may take a moment to be let go: until the server holds none."""
    deadline = time.monotonic() + GIVE_UP
    while connections_held(bridge.pid, bridge.port):
        assert time.monotonic() < deadline, f"the server still holds {connections_held(bridge.pid, bridge.port)}"
        time.sleep(0.05)


def test_a_connection_that_never_sends_a_request_is_closed_after_the_header_timeout(bridge: Bridge) -> None:
    started = time.monotonic()  # before the server can have started the connection's deadline
    with bridge.connect() as sock:
        answer, _ = read_until_closed(sock, GIVE_UP)
        took = time.monotonic() - started
    assert status_of(answer) == 408 and b"request headers took too long" in answer  # the header deadline's answer
    assert took >= HEADER_TIMEOUT - 0.2  # not before it


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout(bridge: Bridge) -> None:
    """The bytes keep coming until the server answers (a header that never ends, far under the
    size cap), so a deadline that each byte moved on would never cut it off."""
    head = webhook_head(bridge.port, 10)[:-4] + b"\r\nx-trickle: "  # never the blank line that ends it
    answer = b""
    deadline = time.monotonic() + GIVE_UP
    with bridge.connect() as sock:
        sock.settimeout(0.1)
        for sent in range(10_000):
            assert time.monotonic() < deadline, "the trickle was never cut off"
            try:
                sock.sendall(head[sent : sent + 1] or b"a")
            except OSError:
                break
            try:
                answer = sock.recv(1024)
                break
            except TimeoutError:
                continue
    assert status_of(answer) == 408 and b"request headers took too long" in answer


def test_a_body_that_trickles_in_is_cut_off_at_the_body_timeout(bridge: Bridge) -> None:
    """10 bytes every 0.2 s of a declared 5,000 keep coming until the server closes: a deadline
    that each piece moved on would let the whole body in (then answer the delivery)."""
    declared, sent = 5000, 0
    with bridge.connect() as sock:
        started = time.monotonic()  # before the server can have read the head and armed the deadline
        sock.sendall(webhook_head(bridge.port, declared))
        closed = False
        while sent < declared - 10:  # never the whole body
            assert time.monotonic() - started < GIVE_UP, "the trickle was never cut off"
            try:
                sock.sendall(b"x" * 10)
                sent += 10
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
    assert closed, f"still open with {sent} of the {declared} bytes sent"
    assert took >= BODY_TIMEOUT - 0.2  # not before its deadline


def test_a_declared_body_over_the_limit_is_refused_before_any_of_it_is_sent(bridge: Bridge) -> None:
    with bridge.connect() as sock:
        sock.sendall(webhook_head(bridge.port, 1_048_575))  # just under 1 MiB, and not a byte of it
        answer, _ = read_until_closed(sock, GIVE_UP)
    # Answered with no byte of the body sent: a server waiting for the body would only have
    # closed at the body deadline, with no answer.
    assert status_of(answer) == 413


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
            answer, _ = read_until_closed(extra, GIVE_UP)
        # Refused at once: a server that queued it would have answered 200 once one was freed
        # (below), and the held connections are still open.
        assert status_of(answer) == 503 and b"retry-after: 5" in answer.lower()
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
            # 150 clients (one address each), not one client over its own cap.
            sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(f"127.0.1.{n + 1}", 0))
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
    asked_for_the_rest = asyncio.Event()

    async def deliver(first: bytes, rest_after: asyncio.Event | None) -> dict[str, Any]:
        """One request through the receiver: `first` of its body, then the end of it."""
        parts = [first]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if parts:
                return {"type": "http.request", "body": parts.pop(), "more_body": True}
            if rest_after is not None:
                asked_for_the_rest.set()
                await rest_after.wait()
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/webhooks/whop", "query_string": b"", "headers": []}
        await receiver(scope, receive, send)
        return sent[0]

    slow = asyncio.ensure_future(deliver(b"a" * 3000, release))
    await asked_for_the_rest.wait()  # its first 3,000 bytes are read and held
    assert receiver.buffered == 3000
    second = await deliver(b"b" * 3000, None)
    assert second["status"] == 503 and (b"retry-after", b"5") in second["headers"]
    release.set()
    assert (await slow)["status"] == 401  # read whole, then judged on its signature
    assert receiver.buffered == 0
    await engine.dispose()


# Fair shares: one client, idle clients and slow clients cannot keep others out ----------------------

PER_CLIENT = 3
KEPT_FOR_WEBHOOKS = 2


def sockets_of(pid: int) -> int:
    """The server's open sockets: its listener and event-loop pipe, and one per connection."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:
            continue  # closed while listed
    return count


@pytest.fixture(scope="module")
def crowded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bridge, int]]:
    """Timers long enough that only the fair-share rules cut anything off during a test; the
    number of sockets the server holds when no client is connected."""
    proc, port = start(
        tmp_path_factory.mktemp("crowded"),
        BRIDGE_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        BRIDGE_MAX_CONNECTIONS_PER_CLIENT=str(PER_CLIENT),
        BRIDGE_WEBHOOK_CONNECTIONS=str(KEPT_FOR_WEBHOOKS),
        BRIDGE_HEADER_TIMEOUT_SECONDS="60",
        BRIDGE_BODY_TIMEOUT_SECONDS="60",
    )
    try:
        bridge = Bridge(port, proc.pid)
        wait_for_idle_server(bridge)  # the start-up probe's connection is let go
        yield bridge, sockets_of(proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture
def crowded(crowded_server: tuple[Bridge, int]) -> Bridge:
    """The server with no connection left by an earlier test (it would change who gives way)."""
    bridge, _ = crowded_server
    wait_for_idle_server(bridge)  # what a test closed drains within a few seconds (2 s at most lingering)
    return bridge


def connect_from(bridge: Bridge, address: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", bridge.port), timeout=10, source_address=(address, 0))


HALF_A_HEAD = b"GET /healthz HTTP/1.1\r\nhost: x\r\n"  # …and never the blank line that ends it


def slow_head(bridge: Bridge, address: str) -> socket.socket:
    sock = connect_from(bridge, address)
    sock.sendall(HALF_A_HEAD)
    return sock


def finish_head(sock: socket.socket) -> int | None:
    """Send the rest of a slow head: a connection the server kept answers the request."""
    try:
        sock.sendall(b"\r\n")
    except OSError:
        return None
    answer, _ = read_until_answered(sock)
    return status_of(answer)


def read_until_answered(sock: socket.socket, limit: float = 10) -> tuple[bytes, bool]:
    """The server's next answer, whole (by its Content-Length), and whether the server closed the
    connection: an answer that says `connection: close` is read on to the connection's end."""
    sock.settimeout(limit)
    got = b""
    while True:
        head_end = got.find(b"\r\n\r\n")
        if head_end >= 0:
            head = got[:head_end].lower()
            length = re.search(rb"content-length: *(\d+)", head)
            whole = len(got) >= head_end + 4 + (int(length.group(1)) if length else 0)
            if whole and b"connection: close" not in head:
                return got, False
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return got, False
        except ConnectionResetError:
            return got, True
        if not chunk:
            return got, True
        got += chunk


def deliver(bridge: Bridge, n: int) -> int:
    """One signed delivery from 127.0.0.1 on a new connection, as Whop makes them."""
    body = b'{"type":"membership.updated","data":{"id":"mem_share%d"}}' % n
    with httpx.Client(base_url=f"http://127.0.0.1:{bridge.port}", timeout=10) as client:
        try:
            return client.post("/webhooks/whop", content=body, headers=signed_headers(SECRET, body)).status_code
        except httpx.HTTPError:
            return 0


def test_one_client_holding_slow_connections_cannot_keep_a_sender_s_deliveries_out(crowded: Bridge) -> None:
    """The attack on the bridge: one address opens three times the server's cap in slow-header
    connections; before, they filled it and every delivery got 503."""
    hog = [slow_head(crowded, "127.0.0.2") for _ in range(3 * MAX_CONNECTIONS)]
    try:
        assert [deliver(crowded, n) for n in range(5)] == [200] * 5
        with connect_from(crowded, "127.0.0.2") as one_more:
            answer, closed = read_until_answered(one_more)
        assert status_of(answer) == 503 and b"from your address" in answer and closed
        assert b"retry-after: 5" in answer.lower()
        kept = [finish_head(sock) for sock in hog].count(200)
        assert kept == PER_CLIENT
    finally:
        for sock in hog:
            sock.close()


def test_at_the_cap_an_idle_keep_alive_connection_makes_room_before_a_slow_one(crowded: Bridge) -> None:
    """Half the cap in slow heads from four clients, then half in idle keep-alive connections
    from four more: a new client's delivery is served, and the idle connection idle longest is
    the one closed (before, the new client got 503 until the idle ones timed out)."""
    half = MAX_CONNECTIONS // 2
    slow = [slow_head(crowded, f"127.0.0.{20 + n}") for n in range(half)]
    idle = []
    for n in range(half):
        sock = connect_from(crowded, f"127.0.0.{30 + n}")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        answer, closed = read_until_answered(sock)
        assert status_of(answer) == 200 and not closed
        idle.append(sock)
    try:
        assert deliver(crowded, 1) == 200
        answer, closed = read_until_answered(idle[0])
        assert closed and answer == b""  # closed as an idle connection is: no answer
        assert [finish_head(sock) for sock in slow] == [200] * half  # the slow ones were all kept
    finally:
        for sock in slow + idle:
            sock.close()


def test_at_the_cap_the_client_holding_the_most_gives_way_its_longest_waiting_connection(
    crowded: Bridge,
) -> None:
    """Slow heads from three clients fill the cap (3, 3 and 2): a new client's delivery is served
    in place of the oldest connection of a client holding three, which is told 503."""
    oldest = slow_head(crowded, "127.0.0.3")
    time.sleep(0.2)  # so that it is the oldest by the server's clock, not only in the order sent
    others = [slow_head(crowded, "127.0.0.3") for _ in range(2)]
    others += [slow_head(crowded, "127.0.0.2") for _ in range(3)]
    others += [slow_head(crowded, "127.0.0.4") for _ in range(2)]
    try:
        assert deliver(crowded, 2) == 200
        answer, closed = read_until_answered(oldest)
        assert status_of(answer) == 503 and b"server full" in answer and closed
        assert [finish_head(sock) for sock in others] == [200] * (MAX_CONNECTIONS - 1)
    finally:
        for sock in [oldest, *others]:
            sock.close()


def test_requests_for_other_routes_leave_a_share_of_connections_for_whop_s_deliveries(crowded: Bridge) -> None:
    """Login forms whose bodies never come, from six clients: a seventh request for another route
    is refused, while Whop's deliveries still have their share."""
    share = MAX_CONNECTIONS - KEPT_FOR_WEBHOOKS
    head = b"POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n"
    head += b"content-length: 100\r\n\r\n"
    held = []
    for n in range(share):
        sock = connect_from(crowded, f"127.0.0.{40 + n}")
        sock.sendall(head)
        held.append(sock)
    try:
        with connect_from(crowded, "127.0.0.50") as seventh:
            seventh.sendall(head)
            answer, closed = read_until_answered(seventh)
        assert status_of(answer) == 503 and b"too many requests at once" in answer and closed
        assert deliver(crowded, 3) == 200
    finally:
        for sock in held:
            sock.close()


def test_a_client_reconnecting_in_a_loop_cannot_pile_up_sockets_in_the_server(crowded: Bridge) -> None:
    """Connections turned away linger a moment so their answer is read, but only as many at a time
    as the cap: beyond that they are closed at once (before, 200 refusals held 200 sockets)."""
    before = sockets_of(crowded.pid)
    socks = [connect_from(crowded, "127.0.0.6") for _ in range(200)]
    try:
        answers = [read_until_answered(sock) for sock in socks[PER_CLIENT:]]
        assert all(closed or status_of(answer) == 503 for answer, closed in answers)
        assert sockets_of(crowded.pid) - before <= PER_CLIENT + MAX_CONNECTIONS
    finally:
        for sock in socks:
            sock.close()


@dataclass
class FakeSlot:
    owner: str
    phase: Literal["head", "body", "app", "idle"]
    since: float
    movable: bool = True


def test_who_gives_way_idle_first_then_the_biggest_holder_s_longest_waiting_never_one_being_answered() -> None:
    busy = [FakeSlot("a", "app", 1.0, movable=False), FakeSlot("b", "app", 2.0, movable=False)]
    assert make_room(busy) is None
    idle = FakeSlot("c", "idle", 9.0)
    assert make_room([*busy, FakeSlot("a", "head", 0.5), idle]) is idle
    young_of_big = FakeSlot("d", "body", 5.0)
    old_of_big = FakeSlot("d", "head", 4.0)
    lone_oldest = FakeSlot("e", "head", 0.1)
    assert make_room([lone_oldest, young_of_big, old_of_big, FakeSlot("d", "app", 0.0, movable=False)]) is old_of_big


def test_client_of_groups_ipv6_by_64_and_knows_trusted_proxies() -> None:
    net = ipaddress.ip_network("10.0.0.0/8")
    assert client_of(("10.1.2.3", 80), [net]) == ("10.1.2.3", True)
    assert client_of(("192.0.2.7", 80), [net]) == ("192.0.2.7", False)
    assert client_of(("::ffff:192.0.2.7", 80, 0, 0)) == ("192.0.2.7", False)
    assert client_of(("2001:db8:1:2::5", 80, 0, 0))[0] == client_of(("2001:db8:1:2:ffff::9", 80, 0, 0))[0]
    assert client_of(None) == ("unknown", False)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("BRIDGE_MAX_CONNECTIONS_PER_CLIENT", "9", "must not be more than BRIDGE_MAX_CONNECTIONS (8)"),
        ("BRIDGE_MAX_CONNECTIONS_PER_CLIENT", "0", "greater than or equal to 1"),
        ("BRIDGE_WEBHOOK_CONNECTIONS", "5", "must be at most half of BRIDGE_MAX_CONNECTIONS (4)"),
    ],
)
def test_settings_name_a_fair_share_that_does_not_fit_the_cap(variable: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**{"BRIDGE_MAX_CONNECTIONS": "8", variable: value})
    assert info.value.variable == variable and says in str(info.value)


def test_the_fair_shares_default_to_a_fifth_and_a_tenth_of_the_cap_and_fit_a_small_one() -> None:
    assert Limits.from_settings(load_settings()).per_client == 20
    assert Limits.from_settings(load_settings()).webhook_share == 10
    small = Limits.from_settings(load_settings(BRIDGE_MAX_CONNECTIONS="8"))
    assert (small.per_client, small.webhook_share) == (8, 4)
