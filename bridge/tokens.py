"""OAuth token provider for a connected Whop company.

Whop access tokens live an hour and every refresh rotates the refresh token: the old one is
refused from then on. Losing the new refresh token therefore means the admin must connect
again, and two refreshes racing with the same refresh token end the same way. Hence:

* the new pair is saved in one UPDATE *before* the new access token is used;
* in one process, concurrent callers share one refresh (an `asyncio.Lock`);
* across processes, a `leases` row serialises refreshes and whoever gets it re-reads the
  stored tokens first: if someone else already refreshed, their tokens are adopted instead;
* `invalid_grant` marks the connection `needs_reconnect` (the sync pauses, no data is lost)
  and raises `NeedsReconnect`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.crypto import TokenBox
from bridge.errors import AuthError, NeedsReconnect, RetryableError
from bridge.store import connections
from bridge.store.leases import LeaseBusy, Leases
from bridge.whop.oauth import WhopOAuth

__all__ = ["REFRESH_MARGIN", "OAuthTokens"]

log = logging.getLogger(__name__)

# Refresh this long before expiry, so a request never leaves with a token about to die.
REFRESH_MARGIN = timedelta(minutes=5)
LEASE_TTL = 30.0  # seconds; far longer than one token call


class OAuthTokens:
    """`TokenProvider` for one OAuth connection, backed by the `connections` row."""

    def __init__(
        self,
        engine: AsyncEngine,
        box: TokenBox,
        oauth: WhopOAuth,
        company_id: str,
        *,
        margin: timedelta = REFRESH_MARGIN,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease_ttl: float = LEASE_TTL,
        leases: Leases | None = None,
    ) -> None:
        self._engine = engine
        self._box = box
        self._oauth = oauth
        self.company_id = company_id
        self._margin = margin
        self._clock = clock
        self._lease_ttl = lease_ttl
        self._lock = asyncio.Lock()
        # The process's lease helper (the runtime's); a provider on its own gets one of its own.
        self._leases = leases or Leases(lambda: engine)
        self._access: str | None = None
        self._expires_at: datetime | None = None
        self.refreshes = 0  # refreshes this provider made itself (tests, metrics)

    def __repr__(self) -> str:  # never show a token in logs or tracebacks
        return f"OAuthTokens(company_id={self.company_id!r})"

    # TokenProvider ---------------------------------------------------------------------------

    async def token(self) -> str:
        if self._access is not None and self._fresh(self._expires_at):
            return self._access
        async with self._lock:
            # Whoever held the lock before us may have refreshed already.
            if self._access is not None and self._fresh(self._expires_at):
                return self._access
            return await self._renew(stale=self._access)

    async def invalidate(self, token: str) -> None:
        async with self._lock:
            if self._access is not None and self._access != token:
                return  # already replaced since that request left
            await self._renew(stale=token, force=True)

    # Internals ---------------------------------------------------------------------------------

    def _fresh(self, expires_at: datetime | None) -> bool:
        # No expiry known: trust the token until Whop answers 401.
        return expires_at is None or expires_at - self._margin > self._clock()

    async def _load(self) -> tuple[str | None, str | None, datetime | None]:
        """The stored pair, after checking the connection may still be used."""
        found = await connections.get_connection(self._engine, self.company_id)
        if found is None or found.status == connections.STATUS_DISCONNECTED or not found.has_tokens:
            raise AuthError(f"Whop company {self.company_id} is not connected; use Connect Whop")
        if found.status == connections.STATUS_NEEDS_RECONNECT:
            raise NeedsReconnect(f"the Whop connection of {self.company_id} needs to be reconnected")
        return found.access_token(self._box), found.refresh_token(self._box), found.token_expires_at

    def _adopt(self, access: str, expires_at: datetime | None) -> str:
        self._access, self._expires_at = access, expires_at
        return access

    def _usable(self, access: str | None, expires_at: datetime | None, stale: str | None, force: bool) -> bool:
        """Is the stored access token one we may hand out instead of refreshing?"""
        if access is None:
            return False
        if force:  # Whop refused `stale`: only a different token will do
            return access != stale and self._fresh(expires_at)
        return self._fresh(expires_at)

    async def _renew(self, *, stale: str | None, force: bool = False) -> str:
        access, _, expires_at = await self._load()
        if self._usable(access, expires_at, stale, force):
            assert access is not None
            return self._adopt(access, expires_at)
        # Another process may be refreshing: wait for its result rather than racing it with the
        # same refresh token (which Whop would then refuse as already used).
        try:
            async with self._leases.hold(f"oauth-refresh:{self.company_id}", ttl=self._lease_ttl, wait=self._lease_ttl):
                return await self._refresh_held(stale, force)
        except LeaseBusy:
            raise RetryableError(
                f"another process has been refreshing the Whop token of {self.company_id} too long"
            ) from None

    async def _refresh_held(self, stale: str | None, force: bool) -> str:
        # Re-read under the lease: the previous holder may have just saved a new pair.
        access, refresh, expires_at = await self._load()
        if self._usable(access, expires_at, stale, force):
            assert access is not None
            return self._adopt(access, expires_at)
        if refresh is None:
            await self._give_up("no refresh token is stored")
        assert refresh is not None
        try:
            fresh = await self._oauth.refresh(refresh)
        except NeedsReconnect:
            # A spent refresh token. If another writer saved a newer pair meanwhile, use it.
            access2, refresh2, expires2 = await self._load()
            if refresh2 is not None and refresh2 != refresh and access2 is not None:
                return self._adopt(access2, expires2)
            await self._give_up("Whop refused the refresh token (invalid_grant)")
            raise  # unreachable: _give_up raises
        # Rotation: persist the new pair atomically before anything uses it.
        saved = await connections.save_tokens(
            self._engine,
            self._box,
            self.company_id,
            fresh.access_token,
            fresh.refresh_token or refresh,
            fresh.expires_at,
        )
        if not saved:
            raise AuthError(f"Whop company {self.company_id} was disconnected during a token refresh")
        self.refreshes += 1
        log.info("refreshed the Whop access token", extra={"company_id": self.company_id})
        return self._adopt(fresh.access_token, fresh.expires_at)

    async def _give_up(self, reason: str) -> None:
        self._access, self._expires_at = None, None
        await connections.mark_needs_reconnect(self._engine, self.company_id, reason)
        log.warning("Whop connection needs reconnect: %s", reason, extra={"company_id": self.company_id})
        raise NeedsReconnect(f"the Whop connection of {self.company_id} needs to be reconnected: {reason}")
