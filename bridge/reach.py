"""When Whop or Twenty cannot be reached at all: one wording, and how soon to give up.

A connection refused or a host not found at a client's first call is almost always a wrong
URL or no network, which minutes of backoff do not fix; two quick retries cover a server that
is just restarting. Once a service has answered, the same errors are retried like any other.
The rows that apply this are in each service's table (`twenty/responses.py`, `whop/responses.py`);
what kind of failure an exception is, and the words for it, are here.
"""

from __future__ import annotations

import enum
import socket

import httpx

from bridge.errors import Unreachable

# Retries of a connection failure before the service has ever answered (1 s, then 2 s).
FIRST_CONTACT_RETRIES = 2
# A TCP connect that takes longer than this will not succeed; the read timeout stays longer.
CONNECT_TIMEOUT = 10.0


class Network(enum.StrEnum):
    """How a call that got no HTTP answer failed."""

    REFUSED = "refused"  # connection refused, host not found: nothing listens there
    CONNECT_TIMEOUT = "connect timeout"  # no TCP answer within CONNECT_TIMEOUT
    DROPPED = "dropped"  # connected, then a read timeout, a reset or a broken answer


def network_kind(exc: BaseException) -> Network:
    """The kind of an httpx (or gql-wrapped httpx) transport failure, from the exception's chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.ConnectTimeout):
            return Network.CONNECT_TIMEOUT
        if isinstance(seen, httpx.ConnectError | ConnectionRefusedError | socket.gaierror):
            return Network.REFUSED
        seen = seen.__cause__ or seen.__context__
    return Network.DROPPED


def timeout(seconds: float) -> httpx.Timeout:
    """`seconds` for reads and writes, at most `CONNECT_TIMEOUT` to connect."""
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT))


def why(exc: BaseException) -> str:
    """'host not found', 'connection refused' or 'no answer', from the exception's chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "host not found"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, httpx.TimeoutException | TimeoutError):
            return "no answer"
        seen = seen.__cause__ or seen.__context__
    return "connection failed"


def unreachable(service: str, url: str, variable: str, exc: BaseException) -> Unreachable:
    shown = httpx.URL(url).copy_with(username=None, password=None, query=None)  # a URL may carry a password
    return Unreachable(f"cannot reach {service} at {shown} ({why(exc)}); check {variable} and the network")
