"""Connect Whop in-process: state checks, PKCE, the exchange, storing, the first sync, disconnect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from bridge.config import Settings
from bridge.crypto import TokenBox
from bridge.store import connections
from bridge.store import runs as run_store
from bridge.store.db import utcnow
from bridge.store.tables import oauth_states
from bridge.whop.oauth import DEFAULT_SCOPES, new_code_verifier
from fakes.twenty import FakeTwenty
from fakes.whop import OWNER_USER_ID, FakeWhop, s256, seed_company
from tests.web.conftest import (
    BRIDGE_URL,
    CLIENT_ID,
    COMPANY_ID,
    COMPANY_TITLE,
    WHOP_URL,
    Clock,
    connect_flow,
    consent,
    login,
    start_connect,
)


async def connection_rows(engine: AsyncEngine) -> list[connections.Connection]:
    return await connections.list_connections(engine)


async def state_rows(engine: AsyncEngine) -> list[sa.Row[tuple[object, ...]]]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(oauth_states))).all())


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await login(client)
    assert response.status_code == 303
    return client


@pytest.fixture
async def other_admin(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as c:
        await login(c)
        yield c


async def test_connect_stores_the_company_and_runs_the_first_sync(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    engine: AsyncEngine,
    fake_twenty: FakeTwenty,
    settings: Settings,
) -> None:
    done = await connect_flow(admin, whop_browser)
    assert done.status_code == 303 and done.headers["location"] == "/"
    page = (await admin.get("/")).text
    assert f'Connected to <strong id="company-title">{COMPANY_TITLE}</strong>' in page
    assert "People: 10 created" in page and "Finished" in page
    (conn,) = await connection_rows(engine)
    assert (conn.company_id, conn.company_title, conn.mode, conn.status) == (
        COMPANY_ID,
        COMPANY_TITLE,
        "oauth",
        "connected",
    )
    assert conn.whop_user_id == OWNER_USER_ID and conn.token_expires_at is not None
    assert set(DEFAULT_SCOPES) <= set(conn.scope_list)
    box = TokenBox(settings.fernet)
    assert conn.access_token(box) and conn.refresh_token(box)
    (run,) = await run_store.recent_runs(engine, COMPANY_ID)
    assert (run.kind, run.trigger, run.status) == ("full", "connect", "succeeded")
    assert run.counts["person"]["created"] == 10
    assert fake_twenty.stats.metadata_mutations > 0  # provisioning ran before the sync


async def test_the_authorize_redirect_carries_pkce_state_nonce_and_scopes(
    admin: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    location = await start_connect(admin)
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{WHOP_URL}/oauth/authorize"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == f"{BRIDGE_URL}/oauth/callback"
    assert q["code_challenge_method"] == "S256" and q["nonce"]
    (row,) = await state_rows(engine)
    assert row.state == q["state"] and row.nonce == q["nonce"] and row.used_at is None
    verifier = TokenBox(settings.fernet).decrypt(row.code_verifier_enc)
    assert verifier not in row.code_verifier_enc  # kept encrypted, server side
    assert q["code_challenge"] == s256(verifier)
    assert 590 <= (row.expires_at - row.created_at).total_seconds() <= 600


async def test_deny_shows_a_clear_page_and_stores_nothing(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    page = await connect_flow(admin, whop_browser, decision="deny")
    assert page.status_code == 400
    assert "Access denied" in page.text and "Nothing was stored" in page.text
    assert await connection_rows(engine) == []
    assert fake_whop.stats.tokens_issued == 0
    (row,) = await state_rows(engine)
    assert row.used_at is not None  # the state cannot be used again


async def test_a_tampered_state_is_refused_and_the_code_never_redeemed(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    callback = await consent(whop_browser, await start_connect(admin))
    state = parse_qs(urlsplit(callback).query)["state"][0]
    for bad in (callback.replace(state, state[:-2] + "xx"), callback.replace(f"state={state}", "state=")):
        page = await admin.get(bad)
        assert page.status_code == 400 and "Nothing was stored" in page.text
    assert fake_whop.stats.tokens_issued == 0
    assert await connection_rows(engine) == []


async def test_a_replayed_callback_is_refused(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    engine: AsyncEngine,
    fake_whop: FakeWhop,
    settings: Settings,
) -> None:
    callback = await consent(whop_browser, await start_connect(admin))
    assert (await admin.get(callback)).status_code == 303
    (stored,) = await connection_rows(engine)
    again = await admin.get(callback)
    assert again.status_code == 400 and "already handled" in again.text
    (after,) = await connection_rows(engine)
    assert after.access_token_enc == stored.access_token_enc  # nothing replaced
    assert fake_whop.stats.tokens_issued == 1


async def test_a_state_from_another_session_is_refused(
    admin: httpx.AsyncClient, other_admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    callback = await consent(whop_browser, await start_connect(admin))
    page = await other_admin.get(callback)
    assert page.status_code == 400 and "another browser session" in page.text
    assert await connection_rows(engine) == []
    assert (await admin.get(callback)).status_code == 303  # the rightful session still can


async def test_an_expired_state_is_refused(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    callback = await consent(whop_browser, await start_connect(admin))
    async with engine.begin() as conn:
        await conn.execute(sa.update(oauth_states).values(expires_at=utcnow()))
    page = await admin.get(callback)
    assert page.status_code == 400 and "expired" in page.text.lower()
    assert await connection_rows(engine) == []


async def test_an_expired_code_shows_a_clear_page(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, whop_clock: Clock
) -> None:
    callback = await consent(whop_browser, await start_connect(admin))
    whop_clock.advance(301)  # Whop's codes live five minutes
    page = await admin.get(callback)
    assert page.status_code == 400 and "expired or was already used" in page.text
    assert await connection_rows(engine) == []


async def test_pkce_is_checked_by_whop(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    fake_whop: FakeWhop,
) -> None:
    callback = await consent(whop_browser, await start_connect(admin))
    # Someone swaps the stored verifier: the challenge Whop holds no longer matches.
    forged = TokenBox(settings.fernet).encrypt(new_code_verifier())
    async with engine.begin() as conn:
        await conn.execute(sa.update(oauth_states).values(code_verifier_enc=forged))
    page = await admin.get(callback)
    assert page.status_code == 400 and "Authorization code refused" in page.text
    assert fake_whop.stats.tokens_issued == 0
    assert await connection_rows(engine) == []


async def test_a_nonce_mismatch_is_refused_and_the_grant_revoked(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    callback = await consent(whop_browser, await start_connect(admin))
    async with engine.begin() as conn:
        await conn.execute(sa.update(oauth_states).values(nonce="another-nonce"))
    page = await admin.get(callback)
    assert page.status_code == 400 and "nonce" in page.text
    assert await connection_rows(engine) == []
    assert fake_whop.stats.revocations == 1


async def test_a_failed_exchange_shows_a_clear_page(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    callback = await consent(whop_browser, await start_connect(admin))
    fake_whop.inject(503, path_prefix="/oauth/token")
    page = await admin.get(callback)
    assert page.status_code == 502 and "Whop is unavailable" in page.text
    assert await connection_rows(engine) == []


async def test_several_companies_let_the_admin_pick(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    seed_company(fake_whop, company_id="biz_second", title="Second Shop", members=2, products=1, neighbor=False)
    page = await connect_flow(admin, whop_browser)
    assert page.status_code == 200 and "Which Whop company" in page.text
    assert "Second Shop" in page.text and COMPANY_TITLE in page.text
    assert await connection_rows(engine) == []  # nothing until the choice
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    done = await admin.post("/oauth/choose", data={"csrf_token": token, "company_id": "biz_second"})
    assert done.status_code == 303
    (conn,) = await connection_rows(engine)
    assert (conn.company_id, conn.company_title) == ("biz_second", "Second Shop")
    replay = await admin.post("/oauth/choose", data={"csrf_token": token, "company_id": COMPANY_ID})
    assert replay.status_code == 400  # the pending choice is used up
    assert len(await connection_rows(engine)) == 1


async def test_a_user_without_a_company_gets_a_clear_page(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    fake_whop.add_user("user_nobody", username="nobody", name="No Body", email="nobody@example.com")
    fake_whop.consent_user_id = "user_nobody"
    page = await connect_flow(admin, whop_browser)
    assert page.status_code == 400 and "does not manage any company" in page.text
    assert await connection_rows(engine) == []


async def test_reconnect_replaces_the_tokens_and_clears_needs_reconnect(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await connect_flow(admin, whop_browser)
    (first,) = await connection_rows(engine)
    await connections.mark_needs_reconnect(engine, COMPANY_ID, "invalid_grant")
    assert "Needs reconnect" in (await admin.get("/")).text
    await connect_flow(admin, whop_browser)
    (second,) = await connection_rows(engine)
    assert second.id == first.id and second.status == "connected"
    assert second.access_token_enc != first.access_token_enc and second.refresh_token_enc != first.refresh_token_enc


async def test_disconnect_revokes_deletes_tokens_and_keeps_crm_data(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    engine: AsyncEngine,
    fake_whop: FakeWhop,
    fake_twenty: FakeTwenty,
) -> None:
    await connect_flow(admin, whop_browser)
    writes = fake_twenty.stats.records_written
    token = (await admin.get("/")).text.split('name="csrf_token" value="')[1].split('"')[0]
    done = await admin.post("/disconnect", data={"csrf_token": token, "company_id": COMPANY_ID})
    assert done.status_code == 303
    assert fake_whop.stats.revocations == 1
    (conn,) = await connection_rows(engine)
    assert conn.status == "disconnected" and not conn.has_tokens and conn.refresh_token_enc is None
    page = (await admin.get("/")).text
    assert "Not connected" in page and "the data already in Twenty stays" in page
    assert fake_twenty.stats.records_written == writes  # nothing deleted in the CRM
    assert len(await run_store.recent_runs(engine, COMPANY_ID)) == 1  # history kept


async def test_disconnect_still_forgets_tokens_when_whop_is_down(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    await connect_flow(admin, whop_browser)
    fake_whop.inject(503, count=5, path_prefix="/oauth/revoke")
    token = (await admin.get("/")).text.split('name="csrf_token" value="')[1].split('"')[0]
    await admin.post("/disconnect", data={"csrf_token": token})
    (conn,) = await connection_rows(engine)
    assert conn.status == "disconnected" and not conn.has_tokens


async def test_an_anonymous_callback_consumes_nothing(
    admin: httpx.AsyncClient,
    whop_browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    app: Starlette,
    engine: AsyncEngine,
) -> None:
    callback = await consent(whop_browser, await start_connect(admin))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as stranger:
        page = await stranger.get(callback)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    (row,) = await state_rows(engine)
    assert row.used_at is None
    assert await connection_rows(engine) == []


async def test_a_company_the_user_does_not_manage_cannot_be_picked(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    seed_company(fake_whop, company_id="biz_second", title="Second Shop", members=2, products=1, neighbor=False)
    page = await connect_flow(admin, whop_browser)
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    neighbour = next(c for c in fake_whop.companies if c not in (COMPANY_ID, "biz_second"))
    refused = await admin.post("/oauth/choose", data={"csrf_token": token, "company_id": neighbour})
    assert refused.status_code == 400 and "Nothing was stored" in refused.text
    assert await connection_rows(engine) == []
    assert fake_whop.stats.revocations == 1  # the unused grant does not linger at Whop


async def test_connecting_another_company_keeps_the_first_connected(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine, fake_whop: FakeWhop
) -> None:
    await connect_flow(admin, whop_browser)
    seed_company(fake_whop, company_id="biz_second", title="Second Shop", members=2, products=1, neighbor=False)
    page = await connect_flow(admin, whop_browser)
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    await admin.post("/oauth/choose", data={"csrf_token": token, "company_id": "biz_second"})
    rows = {c.company_id: c for c in await connection_rows(engine)}
    assert rows[COMPANY_ID].status == "connected" and rows[COMPANY_ID].has_tokens
    assert rows["biz_second"].status == "connected" and rows["biz_second"].has_tokens
    assert fake_whop.stats.revocations == 0
