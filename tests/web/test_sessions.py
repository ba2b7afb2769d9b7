"""Admin sessions live on the server: logout, "log out all sessions", a changed password and the
idle and absolute timeouts end them, whatever a copied cookie says. Only a hash of the id is stored."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from bridge.config import Settings, load_settings
from bridge.runtime import Runtime, Transports
from bridge.web.app import create_app
from tests.web.conftest import BRIDGE_URL, PASSWORD, Clock, login, page_csrf

COOKIE = "bridge_session"


def browser(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL)


def copy_of(client: httpx.AsyncClient, app: Starlette) -> httpx.AsyncClient:
    """Another browser holding a copy of `client`'s session cookie (a stolen or exported cookie)."""
    other = browser(app)
    other.cookies.set(COOKIE, client.cookies[COOKIE], domain="bridge.test")
    return other


async def logged_in(client: httpx.AsyncClient) -> bool:
    page = await client.get("/")
    status = await client.get("/api/status")
    assert (page.status_code == 200) == (status.status_code == 200), (page.status_code, status.status_code)
    return page.status_code == 200


@pytest.fixture
def clock(app: Starlette) -> Clock:
    clock = Clock()
    app.state.ctx.sessions.clock = clock
    app.state.ctx.throttle.clock = clock
    return clock


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await login(client)).status_code == 303
    return client


@pytest.fixture
async def stolen(admin: httpx.AsyncClient, app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with copy_of(admin, app) as other:
        assert await logged_in(other)  # a copy works while the session lives
        yield other


async def test_a_copied_cookie_stops_working_at_logout(admin: httpx.AsyncClient, stolen: httpx.AsyncClient) -> None:
    assert (await admin.post("/logout", data={"csrf_token": await page_csrf(admin)})).status_code == 303
    assert not await logged_in(admin)
    assert not await logged_in(stolen)
    # Nor can the copy act: its POSTs go to the login page and change nothing.
    response = await stolen.post("/sync", data={"kind": "full"})
    assert response.status_code == 303 and response.headers["location"] == "/login"


async def test_log_out_all_sessions_ends_every_browser(
    app: Starlette, admin: httpx.AsyncClient, stolen: httpx.AsyncClient
) -> None:
    async with browser(app) as laptop:
        await login(laptop)
        page = await laptop.get("/")
        assert 'action="/sessions/logout-all"' in page.text  # the control is on the page
        response = await laptop.post("/sessions/logout-all", data={"csrf_token": await page_csrf(laptop)})
        assert response.status_code == 303 and response.headers["location"] == "/login"
        for each in (laptop, admin, stolen):
            assert not await logged_in(each)
        await login(laptop)  # a new login works again
        assert await logged_in(laptop)


async def test_log_out_all_sessions_needs_the_csrf_token(admin: httpx.AsyncClient) -> None:
    assert (await admin.post("/sessions/logout-all", data={"csrf_token": "forged"})).status_code == 403
    assert await logged_in(admin)


async def test_a_changed_admin_password_ends_sessions_made_with_the_old_one(
    admin: httpx.AsyncClient, settings: Settings, transports: Transports, engine: AsyncEngine
) -> None:
    changed = load_settings(
        **{
            "DATABASE_URL": settings.database_url,
            "BRIDGE_PUBLIC_URL": BRIDGE_URL,
            "BRIDGE_ADMIN_PASSWORD": PASSWORD + " and more",
            "BRIDGE_SECRET_KEY": settings.bridge_secret_key.get_secret_value() if settings.bridge_secret_key else "",
        }
    )
    restarted = create_app(Runtime(changed, transports=transports, store=engine), background=False)
    async with copy_of(admin, restarted) as same_cookie:
        assert not await logged_in(same_cookie)
        assert (await login(same_cookie)).status_code == 401  # the old password is refused
        assert (await login(same_cookie, PASSWORD + " and more")).status_code == 303
        assert await logged_in(same_cookie)


async def test_an_idle_session_ends(app: Starlette, clock: Clock, admin: httpx.AsyncClient, settings: Settings) -> None:
    idle = settings.session_idle_minutes * 60
    clock.advance(idle - 60)
    assert await logged_in(admin)  # use keeps it alive…
    clock.advance(idle - 60)
    assert await logged_in(admin)
    clock.advance(idle + 1)  # …and a quiet spell longer than the idle timeout ends it
    assert not await logged_in(admin)


async def test_a_busy_session_still_ends_at_its_absolute_limit(
    clock: Clock, admin: httpx.AsyncClient, settings: Settings
) -> None:
    limit = settings.session_max_hours * 3600
    step = settings.session_idle_minutes * 60 / 2
    used = 0.0
    while used + step < limit:
        clock.advance(step)
        used += step
        assert await logged_in(admin), used
    clock.advance(limit - used + 1)
    assert not await logged_in(admin)


def session_id_in(cookie: str) -> str:
    """The id inside Starlette's signed cookie (base64 JSON, then a timestamp and a signature)."""
    payload = cookie.split(".", 1)[0]
    data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    return str(data["sid"])


async def test_the_database_holds_a_hash_of_the_session_id_not_the_id(
    admin: httpx.AsyncClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    from bridge.store.tables import admin_sessions

    sid = session_id_in(admin.cookies[COOKIE])
    async with engine.connect() as db:
        hashes = (await db.execute(sa.select(admin_sessions.c.id_hash))).scalars().all()
    assert hashes == [hashlib.sha256(sid.encode()).hexdigest()]
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("bridge.db*"))
    assert sid.encode() not in raw


async def test_expired_sessions_are_pruned_at_the_next_login(
    app: Starlette, clock: Clock, admin: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    from bridge.store.tables import admin_sessions

    clock.advance(settings.session_idle_minutes * 60 + 1)
    async with browser(app) as other:
        await login(other)
    async with engine.connect() as db:
        rows = (await db.execute(sa.select(sa.func.count()).select_from(admin_sessions))).scalar()
    assert rows == 1  # the stale one went; the new one stays
