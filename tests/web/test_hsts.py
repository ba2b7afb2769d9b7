"""Strict-Transport-Security: browsers are told to use https only when the bridge is published
over https, on every response (pages, the webhook endpoint, errors); never over plain http,
where it would lock a local trial out of its own admin page."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.config import Settings
from bridge.runtime import Runtime, Transports
from bridge.web.app import create_app

PATHS = [("GET", "/login"), ("GET", "/healthz"), ("GET", "/no-such-page"), ("POST", "/webhooks/whop")]


async def responses(settings: Settings, transports: Transports, engine: AsyncEngine) -> AsyncIterator[httpx.Response]:
    app = create_app(Runtime(settings, transports=transports, store=engine), background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.bridge_public_url) as c:
        for method, path in PATHS:
            yield await c.request(method, path, content=b"{}" if method == "POST" else None)


async def test_an_https_bridge_tells_browsers_to_use_https_only(
    settings: Settings, transports: Transports, engine: AsyncEngine
) -> None:
    published = settings.model_copy(update={"bridge_public_url": "https://bridge.example.com"})
    seen = [r async for r in responses(published, transports, engine)]
    assert [r.status_code for r in seen] == [200, 200, 404, 401]
    for r in seen:
        assert r.headers.get("strict-transport-security") == "max-age=31536000", r.request.url


@pytest.mark.parametrize("public_url", ["http://bridge.test", "http://127.0.0.1:8000"])
async def test_a_plain_http_bridge_sends_no_hsts(
    settings: Settings, transports: Transports, engine: AsyncEngine, public_url: str
) -> None:
    local = settings.model_copy(update={"bridge_public_url": public_url})
    seen = [r async for r in responses(local, transports, engine)]
    assert [r.status_code for r in seen] == [200, 200, 404, 401]
    assert all("strict-transport-security" not in r.headers for r in seen)
