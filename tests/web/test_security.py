"""Admin access: no data for anonymous requests, CSRF on every POST, login rules, and secrets kept
out of the database file, the logs and the pages."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Route

from bridge.config import Settings, load_settings
from bridge.crypto import TokenBox
from bridge.runtime import Runtime, Transports
from bridge.store import connections
from bridge.store.tables import oauth_states
from bridge.web.app import create_app
from fakes.whop import FakeWhop
from tests.conftest import open_store
from tests.web.conftest import (
    BRIDGE_URL,
    CLIENT_SECRET,
    COMPANY_ID,
    COMPANY_TITLE,
    PASSWORD,
    TWENTY_KEY,
    connect_flow,
    consent,
    csrf_of,
    login,
    page_csrf,
    start_connect,
)

# Routes anyone may call: the login form, the health check, Whop's signed webhook, static CSS/JS.
# Operational endpoints carry counts and readiness, no secrets or personal data (like /healthz).
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/webhooks/whop"),
}


def admin_routes(app: Starlette) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD" and (method, route.path) not in PUBLIC:
                    found.append((method, route.path))
    return found


def test_the_route_list_is_what_the_tests_cover(app: Starlette) -> None:
    assert set(admin_routes(app)) == {
        ("GET", "/"),
        ("GET", "/api/status"),
        ("GET", "/oauth/callback"),
        ("POST", "/connect"),
        ("POST", "/oauth/choose"),
        ("POST", "/disconnect"),
        ("POST", "/provision"),
        ("POST", "/sync"),
        ("POST", "/webhooks/replay"),
        ("POST", "/webhooks/enable"),
        ("POST", "/webhooks/recover"),
        ("POST", "/sessions/logout-all"),
    }


async def test_anonymous_requests_get_no_data(
    app: Starlette, client: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    # Connect first (in another session) so there is something to leak.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as admin:
        await login(admin)
        await connect_flow(admin, whop_browser)
    revocations, runs_before = fake_whop.stats.revocations, fake_whop.stats.tokens_issued
    for method, path in admin_routes(app):
        response = await client.request(method, path, data={"kind": "full"} if method == "POST" else None)
        assert response.status_code in (303, 401), (method, path, response.status_code)
        if response.status_code == 303:
            assert response.headers["location"] == "/login"
        for leak in (COMPANY_TITLE, COMPANY_ID, "created"):
            assert leak not in response.text, (method, path)
    assert (await client.get("/api/status")).json() == {"error": "login required"}
    (conn,) = await connections.list_connections(engine)
    assert conn.status == "connected"  # the anonymous POST /disconnect did nothing
    assert fake_whop.stats.revocations == revocations and fake_whop.stats.tokens_issued == runs_before


async def test_every_admin_post_needs_the_csrf_token(
    client: httpx.AsyncClient, app: Starlette, engine: AsyncEngine
) -> None:
    await login(client)
    good = await page_csrf(client)
    for method, path in admin_routes(app):
        if method != "POST":
            continue
        for data in ({"kind": "full"}, {"kind": "full", "csrf_token": "wrong"}, {"csrf_token": good[:-1] + "x"}):
            response = await client.post(path, data=data)
            assert response.status_code == 403, (path, data, response.status_code)
            assert "Request refused" in response.text
    assert await connections.list_connections(engine) == []


async def test_a_post_from_another_origin_is_refused_even_with_the_token(client: httpx.AsyncClient) -> None:
    await login(client)
    token = await page_csrf(client)
    response = await client.post(
        "/sync", data={"csrf_token": token, "kind": "full"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    same = await client.post("/provision", data={"csrf_token": token}, headers={"Origin": BRIDGE_URL})
    assert same.status_code == 303


async def test_the_csrf_token_also_works_as_a_header(client: httpx.AsyncClient) -> None:
    await login(client)
    response = await client.post("/provision", headers={"X-CSRF-Token": await page_csrf(client)})
    assert response.status_code == 303


async def test_the_webhook_route_is_exempt_from_csrf_but_signed(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhooks/whop", content=b"{}", headers={"content-type": "application/json"})
    assert response.status_code in (400, 401)  # refused by the signature check, not by CSRF


async def test_login_needs_the_right_password_and_its_csrf_token(client: httpx.AsyncClient) -> None:
    assert (await login(client, "wrong password")).status_code == 401
    assert (await client.get("/")).status_code == 303
    page = await client.get("/login")
    missing = await client.post("/login", data={"password": PASSWORD})
    assert missing.status_code == 403
    ok = await client.post("/login", data={"password": PASSWORD, "csrf_token": csrf_of(page.text)})
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert (await client.get("/")).status_code == 200
    token = await page_csrf(client)
    assert (await client.post("/logout", data={"csrf_token": token})).status_code == 303
    assert (await client.get("/")).status_code == 303


async def test_login_redirects_only_to_local_paths(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    response = await client.post(
        "/login", data={"password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "//evil.example/x"}
    )
    assert response.headers["location"] == "/"


async def test_guessing_is_throttled(client: httpx.AsyncClient) -> None:
    for _ in range(10):
        assert (await login(client, "guess")).status_code == 401
    assert (await login(client)).status_code == 429  # even the right password waits now


async def test_the_session_id_changes_at_login(client: httpx.AsyncClient) -> None:
    await client.get("/login")
    before = client.cookies.get("bridge_session")
    await login(client)
    assert client.cookies.get("bridge_session") != before


async def test_without_a_password_the_page_explains_and_nothing_works(
    tmp_path: Path, transports: Transports, secret_key: str
) -> None:
    settings = load_settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/x.db", BRIDGE_SECRET_KEY=secret_key, BRIDGE_PUBLIC_URL=BRIDGE_URL
    )
    engine = await open_store(settings)
    try:
        app = create_app(Runtime(settings, transports=transports, store=engine), background=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as c:
            page = await c.get("/login")
            assert page.status_code == 503 and "BRIDGE_ADMIN_PASSWORD" in page.text
            assert 'type="password"' not in page.text
            assert (await c.post("/login", data={"password": ""})).status_code in (403, 503)
            assert (await c.get("/")).status_code == 303
    finally:
        await engine.dispose()


async def test_cookie_flags(client: httpx.AsyncClient, tmp_path: Path, transports: Transports, secret_key: str) -> None:
    page = await client.get("/login")
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    settings = load_settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/y.db",
        BRIDGE_SECRET_KEY=secret_key,
        BRIDGE_ADMIN_PASSWORD=PASSWORD,
        BRIDGE_PUBLIC_URL="https://bridge.example.com",
    )
    engine = await open_store(settings)
    try:
        app = create_app(Runtime(settings, transports=transports, store=engine))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://bridge.example.com"
        ) as c:
            assert "secure" in (await c.get("/login")).headers["set-cookie"].lower()
    finally:
        await engine.dispose()


async def test_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "form-action 'self' http://whop.test" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


# Secrets -----------------------------------------------------------------------------------------------


def issued_secrets(fake: FakeWhop) -> list[str]:
    """Every access and refresh token the fake handed out."""
    return [*fake.oauth._access.keys(), *fake.oauth._refresh.keys()]


async def test_tokens_are_unreadable_in_the_database_file_and_absent_from_logs_and_pages(
    client: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    engine: AsyncEngine,
    fake_whop: FakeWhop,
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await login(client)
    callback = await consent(whop_browser, await start_connect(client))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    async with engine.connect() as db:
        (verifier_enc,) = (await db.execute(sa.select(oauth_states.c.code_verifier_enc))).one()
    verifier = TokenBox(settings.fernet).decrypt(verifier_enc)
    pages = [await client.get(callback), await client.get("/"), await client.get("/api/status")]
    # A refresh too, so rotated tokens are covered.
    fake_whop.expire_access_tokens()
    token = await page_csrf(client)
    pages.append(await client.post("/sync", data={"csrf_token": token, "kind": "reconcile"}))
    pages += [await client.get("/"), await client.get("/api/status")]
    assert fake_whop.stats.refreshes >= 1
    assert len(issued_secrets(fake_whop)) >= 4
    secrets = [*issued_secrets(fake_whop), code, verifier, CLIENT_SECRET, TWENTY_KEY, PASSWORD]

    # The test's own browser clients log the URLs they open (the callback carries the code), so
    # their lines are left out; everything the bridge and its HTTP clients logged is checked.
    logged = "\n".join(
        r.getMessage()
        for r in caplog.records
        if not (r.name == "httpx" and ("http://bridge.test/" in r.getMessage() or "/oauth/authorize" in r.getMessage()))
    )
    assert "oauth/token" in logged  # the bridge's own calls are in what is checked
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("bridge.db*"))
    assert raw, "the database file is where the test expects it"
    for secret in secrets:
        assert secret.encode() not in raw, "a secret is readable in the database file"
        assert secret not in logged, "a secret reached a log line"
        for page in pages:
            assert secret not in page.text, f"a secret reached {page.request.url.path}"
    (conn,) = await connections.list_connections(engine)
    assert conn.access_token(TokenBox(settings.fernet)) in issued_secrets(fake_whop)  # encrypted, not lost


async def test_rotating_the_secret_key_keeps_the_connection_working(
    client: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    engine: AsyncEngine,
    fake_whop: FakeWhop,
    settings: Settings,
    transports: Transports,
    secret_key: str,
) -> None:
    await login(client)
    await connect_flow(client, whop_browser)
    rotated = load_settings(
        **{
            "TWENTY_URL": settings.twenty_url,
            "TWENTY_API_KEY": TWENTY_KEY,
            "DATABASE_URL": settings.database_url,
            "BRIDGE_PUBLIC_URL": BRIDGE_URL,
            "BRIDGE_ADMIN_PASSWORD": PASSWORD,
            "BRIDGE_SECRET_KEY": f"{Fernet.generate_key().decode()},{secret_key}",
            "WHOP_CLIENT_ID": settings.whop_client_id,
            "WHOP_CLIENT_SECRET": CLIENT_SECRET,
            "WHOP_API_URL": settings.whop_api_url,
            "TWENTY_REQUESTS_PER_MINUTE": 100_000,
        }
    )
    app = create_app(Runtime(rotated, transports=transports, store=engine), background=False)
    fake_whop.expire_access_tokens()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as c:
        await login(c)
        page = await c.get("/")
        assert f'Connected to <strong id="company-title">{COMPANY_TITLE}</strong>' in page.text
        await c.post("/sync", data={"csrf_token": csrf_of(page.text), "kind": "reconcile"})
        status = (await c.get("/api/status")).json()
    assert status["job"]["status"] == "succeeded", status
    assert fake_whop.stats.refreshes == 1  # the old-key refresh token was read and used
