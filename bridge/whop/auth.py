"""Where the Whop client gets its bearer token.

The client asks a `TokenProvider` for a token before every request and tells it when Whop
answered 401, so an OAuth provider (another module) can refresh and hand out a new token, while
a static API key can only fail loudly.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bridge.errors import AuthError, ConfigError


@runtime_checkable
class TokenProvider(Protocol):
    async def token(self) -> str:
        """A bearer token to send now."""
        ...

    async def invalidate(self, token: str) -> None:
        """Whop rejected `token` (401): refresh it, or raise `AuthError`/`NeedsReconnect`."""
        ...


class StaticToken:
    """A company or app API key: nothing to refresh."""

    __slots__ = ("_api_key",)

    def __init__(self, api_key: str) -> None:
        if not api_key or not api_key.strip():
            raise ConfigError("WHOP_API_KEY", "is empty")
        self._api_key = api_key.strip()

    def __repr__(self) -> str:  # never show the key in logs or tracebacks
        return "StaticToken(api_key=***)"

    async def token(self) -> str:
        return self._api_key

    async def invalidate(self, token: str) -> None:
        raise AuthError("Whop rejected the API key (401); check WHOP_API_KEY")
