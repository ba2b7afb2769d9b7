"""The HTTP server: uvicorn, with the limits it lacks for a service on the open internet.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) but nothing else about a
client: a connection may send its headers or its body a byte a minute and be held forever, and
every connection is accepted. `limit_concurrency` answers 503 only once a request's headers are
in, so slow-header connections still pile up under it. The bridge therefore runs uvicorn's
httptools protocol with a small subclass that sees every connection from its first byte:

- a cap on open connections: one over the cap is answered 503 and closed before anything is read;
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
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bridge.config import Settings

__all__ = ["MAX_HEADER_BYTES", "LimitedProtocol", "Limits", "limited_protocol", "run"]

log = logging.getLogger(__name__)

# Real requests' headers are a few hundred bytes; nginx's large_client_header_buffers default is 4 × 8 KiB.
MAX_HEADER_BYTES = 32 * 1024
# Refusals are logged at most this often: an attack must not become a flood of log lines.
_LOG_EVERY_SECONDS = 10.0
# How long a connection cut off with an answer still takes (and drops) what the client sends.
_LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class Limits:
    max_connections: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 20.0
    max_body: int = 256 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_connections=settings.max_connections,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_body=settings.max_body_bytes,
        )


def _plain(status: bytes, text: str, *extra: bytes) -> bytes:
    body = text.encode()
    head = [b"HTTP/1.1 " + status, b"content-type: text/plain; charset=utf-8", *extra]
    head += [b"content-length: " + str(len(body)).encode(), b"connection: close"]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


REFUSED = _plain(b"503 Service Unavailable", "too many connections\n", b"retry-after: 5")
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


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under `limits`; `limited_protocol` makes one per setting."""

    limits = Limits()
    refusals = _Refusals()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False  # over the cap: never registered with the server
        self._lingering = False  # answered and cut off: what still arrives is dropped
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._body_bytes = 0

    # The connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Before super(): a refused connection is not counted and holds no request state.
            self._refused = True
            self.transport = transport
            self._cut_off("over the connection cap", REFUSED)
            return
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self.timeout_keep_alive_task is not None:
            # Idle between requests until now: these bytes start the next request.
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
        super().on_headers_complete()
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
        super().on_message_complete()

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
        if self.cycle is not None and not self.cycle.response_complete:
            # The app, if it waits on the body, reads a disconnect and ends.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if not response or not self.transport.can_write_eof():
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
        self._deadline = self.loop.call_later(_LINGER_SECONDS, self.transport.close)


def limited_protocol(limits: Limits) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's `http=` (uvicorn builds one instance per connection)."""
    return type("LimitedProtocol", (LimitedProtocol,), {"limits": limits, "refusals": _Refusals()})


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
