"""OAuth token provider for a connected Whop company (filled in by the Connect Whop work)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.config import Settings
from bridge.whop.auth import TokenProvider


async def connected_provider(
    settings: Settings, engine: AsyncEngine, *, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[TokenProvider, str, int | None] | None:
    """The token provider of the connected company, or None when none is connected by OAuth."""
    return None
