"""The HTTP server: uvicorn, with the limits it lacks for a service on the open internet.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) but nothing else about a
client: a connection may send its headers or its body a byte a minute and be held forever, and
every connection is accepted. `limit_concurrency` answers 503 only once a request's headers are
in, so slow-header connections still pile up under it. The bridge therefore runs uvicorn's
httptools protocol with a small subclass that sees every connection from its first byte:

- a cap on open connections, and a smaller one per client address (an IPv6 client by its /64;
  not for BRIDGE_TRUSTED_PROXIES, behind which every client shares the proxy's address): one
  over a client's cap is answered 503 and closed before anything is read. At the server's cap a
  new connection takes the place of one that is not being answered: an idle keep-alive
  connection first, then one still sending its request (answered 503), from the client holding
  the most connections, longest waiting first. Only when every connection is being answered is
  it refused (503). So one client holds at most its cap, and slow or idle clients from many
  addresses cannot keep a new one out;
- a share kept for Whop's deliveries: requests for other routes, from their headers to their
  response, are at most the cap minus `webhook_share`; past that they are answered 503;
- a header deadline: a request's headers must arrive within `header_timeout` of its first byte
  (of the connection, for the first request), or the connection gets 408 and is closed;
- a header size cap: headers over `MAX_HEADER_BYTES` get 431 and the connection is closed;
- a body deadline: the whole body must arrive within `body_timeout` of the headers, or the
  connection is closed;
- a body size cap: a Content-Length over `max_body` is answered 413 before a byte of the body
  is read, and a chunked body is cut off once it passes `max_body`.

A timer per connection, on the event loop, rather than an app-level timeout: it covers the
headers (which arrive before any app code runs), every route alike, and a body the app never
reads. The webhook endpoint also checks sizes itself (`bridge.webhooks`), for its own 413.

A connection cut off leaves the counts at once; it may drain what its client still sends for a
moment so the answer is read, but no more of them at a time than the cap (a client reconnecting
in a loop must not pile up sockets), past which they are closed at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge.config import IPNetwork, Settings

__all__ = ["MAX_HEADER_BYTES", "LimitedProtocol", "Limits", "client_of", "limited_protocol", "make_room", "run"]

log = logging.getLogger(__name__)

# Real requests' headers are a few hundred bytes; nginx's large_client_header_buffers default is 4 × 8 KiB.
MAX_HEADER_BYTES = 32 * 1024
# Refusals are logged at most this often: an attack must not become a flood of log lines.
_LOG_EVERY_SECONDS = 10.0
# How long a connection cut off with an answer still takes (and drops) what the client sends.
_LINGER_SECONDS = 2.0
# The one route whose requests the webhook share is kept for.
_WEBHOOK = (b"POST", b"/webhooks/whop")


@dataclass(frozen=True)
class Limits:
    max_connections: int = 100
    per_client: int = 20
    webhook_share: int = 10
    header_timeout: float = 10.0
    body_timeout: float = 20.0
    max_body: int = 256 * 1024
    trusted: tuple[IPNetwork, ...] = ()  # proxies: exempt from the per-client cap

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_connections=settings.max_connections,
            per_client=settings.connections_per_client,
            webhook_share=settings.connections_kept_for_webhooks,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_body=settings.max_body_bytes,
            trusted=tuple(settings.trusted_networks),
        )


def client_of(peer: Any, trusted: Iterable[IPNetwork] = ()) -> tuple[str, bool]:
    """Whose a connection is, from its peer address: an IPv6 client by its /64 (one host's usual
    share, so it cannot step through addresses it owns), and whether it is a trusted proxy."""
    host = peer[0] if isinstance(peer, tuple) and peer else ""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host or "unknown", False  # a Unix socket: all one client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    is_trusted = any(address in net for net in trusted)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False)), is_trusted
    return str(address), is_trusted


Phase = Literal["head", "body", "app", "idle"]


class Slot(Protocol):
    """A connection as `make_room` sees it."""

    @property
    def owner(self) -> str: ...

    @property
    def phase(self) -> Phase: ...

    @property
    def since(self) -> float: ...

    @property
    def movable(self) -> bool: ...


S = TypeVar("S", bound=Slot)


def make_room(slots: Iterable[S]) -> S | None:
    """Which connection gives way to a new one when the server is full: not one being answered
    (`movable` false), an idle one before one still sending its request, the client holding the
    most connections first, and among those the one waiting longest; None when none may."""
    slots = list(slots)
    held: dict[str, int] = {}
    for slot in slots:
        held[slot.owner] = held.get(slot.owner, 0) + 1
    movable = [slot for slot in slots if slot.movable]
    if not movable:
        return None
    return min(movable, key=lambda slot: (slot.phase != "idle", -held[slot.owner], slot.since))


def _plain(status: bytes, text: str, *extra: bytes) -> bytes:
    body = text.encode()
    head = [b"HTTP/1.1 " + status, b"content-type: text/plain; charset=utf-8", *extra]
    head += [b"content-length: " + str(len(body)).encode(), b"connection: close"]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


REFUSED = _plain(b"503 Service Unavailable", "too many connections\n", b"retry-after: 5")
REFUSED_CLIENT = _plain(b"503 Service Unavailable", "too many connections from your address\n", b"retry-after: 5")
MADE_ROOM = _plain(b"503 Service Unavailable", "server full: this request was too slow to keep\n", b"retry-after: 5")
OVER_SHARE = _plain(b"503 Service Unavailable", "too many requests at once\n", b"retry-after: 5")
HEADERS_TOO_SLOW = _plain(b"408 Request Timeout", "request headers took too long\n")
HEADERS_TOO_LARGE = _plain(b"431 Request Header Fields Too Large", "request headers too large\n")
BODY_TOO_LARGE = _plain(b"413 Content Too Large", "request body too large\n")


class _Refusals:
    """Counts refusals by reason and logs them in batches."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._logged_at = 0.0

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_SECONDS:
            self._logged_at = now
            summary = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            log.warning("HTTP connections cut off by the server's limits so far: %s", summary)


class _Pool:
    """One server's open connections by client, its requests for other routes than the webhook,
    and its cut-off connections still draining."""

    def __init__(self) -> None:
        self.by_client: dict[str, set[LimitedProtocol]] = {}
        self.other_routes = 0
        self.lingering = 0

    def holding(self, client: str) -> int:
        return len(self.by_client.get(client, ()))

    def add(self, conn: LimitedProtocol) -> None:
        self.by_client.setdefault(conn.client_key, set()).add(conn)

    def remove(self, conn: LimitedProtocol) -> None:
        held = self.by_client.get(conn.client_key)
        if held is not None:
            held.discard(conn)
            if not held:
                del self.by_client[conn.client_key]

    def all(self) -> Iterable[LimitedProtocol]:
        for held in self.by_client.values():
            yield from held


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under `limits`; `limited_protocol` makes one per setting."""

    limits = Limits()
    refusals = _Refusals()
    pool = _Pool()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False  # over a cap: never registered with the server
        self._lingering = False  # answered and cut off: what still arrives is dropped
        self._drains = False  # counted in `pool.lingering`
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._body_bytes = 0
        self.client_key = ""
        self.phase: Phase = "head"
        self.since = 0.0  # when the current request began, or the connection went idle
        self._other_routes: deque[bool] = deque()  # per request not yet answered: counted in `pool.other_routes`

    # As a `Slot` -----------------------------------------------------------------------

    @property
    def owner(self) -> str:
        return self.client_key

    @property
    def movable(self) -> bool:
        """Not being answered: idle, or still sending its request (with none queued behind one)."""
        return self.phase != "app" and not self.pipeline and not self._lingering and not self.transport.is_closing()

    def _enter(self, phase: Phase) -> None:
        if phase in ("head", "idle"):
            self.since = self.loop.time()
        self.phase = phase

    # The connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.client_key, trusted = client_of(transport.get_extra_info("peername"), self.limits.trusted)
        if not trusted and self.pool.holding(self.client_key) >= self.limits.per_client:
            self._refuse(transport, "over the per-client connection cap", REFUSED_CLIENT)
            return
        if len(self.connections) >= self.limits.max_connections:
            other = make_room(self.pool.all())
            if other is None:
                self._refuse(transport, "over the connection cap", REFUSED)
                return
            other.give_way()
        super().connection_made(transport)
        self.pool.add(self)
        self._enter("head")
        self._arm(self.limits.header_timeout, self._headers_too_slow)

    def _refuse(self, transport: asyncio.Transport, reason: str, answer: bytes) -> None:
        # Before super(): a refused connection is not counted and holds no request state.
        self._refused = True
        self.transport = transport
        self._cut_off(reason, answer)

    def give_way(self) -> None:
        """Close this connection for a new one (the server is full): see `make_room`."""
        if self.phase == "idle":
            self.refusals.add("idle connection closed to make room")
            self._unset_keepalive_if_required()
            self.transport.close()
        else:
            self._cut_off("cut off to make room", b"" if self._responding() else MADE_ROOM)
        self._leave()  # now, not when the loop reports the close: the new connection takes its place

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._drains:
            self._drains = False
            self.pool.lingering -= 1
        if not self._refused:
            self._leave()
            super().connection_lost(exc)

    def _leave(self) -> None:
        """Out of every count: the server's, the client's and the other routes' share."""
        self.connections.discard(self)
        self.pool.remove(self)
        self.pool.other_routes -= sum(self._other_routes)
        self._other_routes.clear()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self.timeout_keep_alive_task is not None:
            # Idle between requests until now: these bytes start the next request.
            self._enter("head")
            self._arm(self.limits.header_timeout, self._headers_too_slow)
        super().data_received(data)

    # Parser callbacks (llhttp calls them as it parses; each first checks the connection
    # was not cut off earlier in the same read) ----------------------------------------

    def on_message_begin(self) -> None:
        self._header_bytes = self._body_bytes = 0
        if self._deadline is None:  # a pipelined request: its headers get their own deadline
            self._arm(self.limits.header_timeout, self._headers_too_slow)
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._count_header(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._count_header(len(name) + len(value)):
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._lingering:
            return
        declared = _content_length(self.headers)
        if declared is not None and declared > self.limits.max_body:
            # Answered here: the app never starts, and not a byte of the body is read.
            self._cut_off("body over the size limit", BODY_TOO_LARGE)
            return
        other = (self.parser.get_method(), self.url.split(b"?", 1)[0]) != _WEBHOOK
        if other and self.pool.other_routes >= self.limits.max_connections - self.limits.webhook_share:
            self._cut_off("other routes over their share", b"" if self._responding() else OVER_SHARE)
            return
        self.pool.other_routes += other
        self._other_routes.append(other)
        super().on_headers_complete()
        self._enter("body")
        self._arm(self.limits.body_timeout, self._body_too_slow)

    def on_body(self, body: bytes) -> None:
        if self._lingering:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body:
            # A chunked body has no Content-Length to refuse up front: stop reading it here.
            self._cut_off("body over the size limit", b"" if self._responding() else BODY_TOO_LARGE)
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._lingering:
            return
        self._disarm()
        self._enter("app")
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._other_routes:
            self.pool.other_routes -= self._other_routes.popleft()
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:
            self._enter("idle")

    # Limits ------------------------------------------------------------------------------

    def _count_header(self, size: int) -> bool:
        if self._lingering:
            return False
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            self._cut_off("headers too large", HEADERS_TOO_LARGE)
            return False
        return True

    def _responding(self) -> bool:
        """A response is under way on this connection (pipelining, or an early answer)."""
        return self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._cut_off("headers too slow", b"" if self._responding() else HEADERS_TOO_SLOW)

    def _body_too_slow(self) -> None:
        # The app may be reading the body: it reads a disconnect. No response: one may
        # already be under way, and the client is not listening in time anyway.
        self._deadline = None
        self._cut_off("body too slow", b"")

    def _cut_off(self, reason: str, response: bytes) -> None:
        """End the connection: answer `response` if any, and stop reading requests."""
        self._disarm()
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        self.refusals.add(reason)
        if not self._refused:
            self._unset_keepalive_if_required()
            self._leave()  # its slot is free now, while it drains
        if self.cycle is not None and not self.cycle.response_complete:
            # The app, if it waits on the body, reads a disconnect and ends.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if not response or not self.transport.can_write_eof() or self.pool.lingering >= self.limits.max_connections:
            if response:
                self.transport.write(response)
            self.transport.close()
            return
        # Closing with the client's bytes unread would reset the connection, and the
        # client might never read the answer: say it, half-close, drop what still comes
        # for a moment, then close.
        self.transport.write(response)
        self.transport.write_eof()
        self.flow.resume_reading() if self.flow is not None else self.transport.resume_reading()
        self._drains = True
        self.pool.lingering += 1
        self._deadline = self.loop.call_later(_LINGER_SECONDS, self.transport.close)


def limited_protocol(limits: Limits) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's `http=` (uvicorn builds one instance per connection)."""
    return type("LimitedProtocol", (LimitedProtocol,), {"limits": limits, "refusals": _Refusals(), "pool": _Pool()})


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            # A malformed value is llhttp's to refuse (400); only a clean number counts here.
            return int(value) if value.strip().isdigit() else None
    return None


def run(app: ASGIApp, *, host: str, port: int, limits: Limits, proxy_headers: bool) -> None:
    """Serve `app` until interrupted, with `limits` on every connection."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=limited_protocol(limits),
        ws="none",  # no route speaks WebSocket: an upgrade request is just an HTTP request
        log_config=None,
        proxy_headers=proxy_headers,
        server_header=False,
    )
