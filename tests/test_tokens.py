"""OAuthTokens: refresh before expiry and on 401, rotation saved first, one refresh per storm
(in one process and across processes), and invalid_grant → needs reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.config import Settings, load_settings
from bridge.crypto import TokenBox
from bridge.errors import AuthError, ConfigError, NeedsReconnect
from bridge.runtime import Runtime, Transports
from bridge.store import connections
from bridge.tokens import OAuthTokens
from bridge.whop.client import WhopClient
from bridge.whop.oauth import WhopOAuth, code_challenge, new_code_verifier
from fakes.whop import FakeWhop, seed_company
from tests.conftest import open_store
from tests.web.conftest import (
    BRIDGE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    COMPANY_ID,
    COMPANY_TITLE,
    WHOP_URL,
    authorization_code,
)

CALLBACK = f"{BRIDGE_URL}/oauth/callback"
KEY = Fernet.generate_key().decode()


@pytest.fixture
def fake() -> FakeWhop:
    fake = FakeWhop(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[CALLBACK])
    seed_company(fake, company_id=COMPANY_ID, title=COMPANY_TITLE, members=3, products=1)
    return fake


@pytest.fixture
def transport(fake: FakeWhop) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=fake)


@pytest.fixture
def settings(tmp_path: object) -> Settings:
    return load_settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db",
        BRIDGE_SECRET_KEY=KEY,
        BRIDGE_PUBLIC_URL=BRIDGE_URL,
        WHOP_CLIENT_ID=CLIENT_ID,
        WHOP_CLIENT_SECRET=CLIENT_SECRET,
        WHOP_API_URL=WHOP_URL,
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = await open_store(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def box(settings: Settings) -> TokenBox:
    return TokenBox(settings.fernet)


@pytest.fixture
def oauth(transport: httpx.AsyncBaseTransport) -> WhopOAuth:
    return WhopOAuth(WHOP_URL, CLIENT_ID, CLIENT_SECRET, CALLBACK, transport=transport)


@pytest.fixture
async def connected(fake: FakeWhop, oauth: WhopOAuth, engine: AsyncEngine, box: TokenBox) -> None:
    """A company connected by OAuth, with real tokens from the fake."""
    verifier = new_code_verifier()
    url = oauth.authorize_url(state="s", nonce="n", code_challenge=code_challenge(verifier))
    tokens = await oauth.exchange_code(await authorization_code(fake, url), verifier)
    await connections.upsert_connection(
        engine,
        box,
        company_id=COMPANY_ID,
        company_title=COMPANY_TITLE,
        mode="oauth",
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scopes=tokens.scope,
        whop_user_id="user_owner",
    )


async def expire(fake: FakeWhop, engine: AsyncEngine, box: TokenBox) -> tuple[str, str]:
    """Expire the access token at Whop and in the store; returns the stored (access, refresh)."""
    fake.expire_access_tokens()
    access, refresh, _ = await connections.read_tokens(engine, box, COMPANY_ID)
    assert access and refresh
    await connections.save_tokens(engine, box, COMPANY_ID, access, refresh, datetime.now(UTC) - timedelta(seconds=1))
    return access, refresh


def provider(engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth) -> OAuthTokens:
    return OAuthTokens(engine, box, oauth, COMPANY_ID)


@pytest.mark.usefixtures("connected")
async def test_a_fresh_token_is_used_as_stored(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth
) -> None:
    stored, _, _ = await connections.read_tokens(engine, box, COMPANY_ID)
    assert await provider(engine, box, oauth).token() == stored
    assert fake.stats.refreshes == 0


@pytest.mark.usefixtures("connected")
async def test_refreshes_five_minutes_before_expiry(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth
) -> None:
    access, refresh, _ = await connections.read_tokens(engine, box, COMPANY_ID)
    assert access and refresh
    await connections.save_tokens(engine, box, COMPANY_ID, access, refresh, datetime.now(UTC) + timedelta(minutes=4))
    new = await provider(engine, box, oauth).token()
    assert new != access and fake.stats.refreshes == 1
    stored_access, stored_refresh, expires = await connections.read_tokens(engine, box, COMPANY_ID)
    assert stored_access == new and stored_refresh != refresh  # the rotated pair is what is stored
    assert expires is not None and expires > datetime.now(UTC) + timedelta(minutes=55)


@pytest.mark.usefixtures("connected")
async def test_a_refresh_storm_makes_one_refresh(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth
) -> None:
    await expire(fake, engine, box)
    tokens = provider(engine, box, oauth)
    results = await asyncio.gather(*(tokens.token() for _ in range(50)))
    assert len(set(results)) == 1
    assert fake.stats.refreshes == 1


@pytest.mark.usefixtures("connected")
async def test_a_storm_across_processes_makes_one_refresh(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth
) -> None:
    await expire(fake, engine, box)
    # Two providers with their own locks and caches stand for two processes sharing the database.
    first, second = provider(engine, box, oauth), provider(engine, box, oauth)
    results = await asyncio.gather(*(p.token() for _ in range(25) for p in (first, second)))
    assert len(set(results)) == 1
    assert fake.stats.refreshes == 1


@pytest.mark.usefixtures("connected")
async def test_a_401_refreshes_once_and_the_request_is_retried(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth, transport: httpx.AsyncBaseTransport
) -> None:
    fake.expire_access_tokens()  # Whop says expired; the store still thinks the token is good
    tokens = provider(engine, box, oauth)
    async with WhopClient(WHOP_URL, tokens, COMPANY_ID, http=httpx.AsyncClient(transport=transport)) as client:
        page = await client.request("GET", "/accounts")
    assert [a["id"] for a in page["data"]] == [COMPANY_ID]
    assert fake.stats.refreshes == 1


@pytest.mark.usefixtures("connected")
async def test_a_token_refreshed_by_another_process_is_adopted(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth
) -> None:
    mine, theirs = provider(engine, box, oauth), provider(engine, box, oauth)
    old = await mine.token()
    await expire(fake, engine, box)
    new = await theirs.token()  # the other process refreshes and saves
    await mine.invalidate(old)  # our request got a 401 with the old token
    assert await mine.token() == new
    assert fake.stats.refreshes == 1


@pytest.mark.usefixtures("connected")
async def test_new_tokens_are_saved_before_they_are_used(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    await expire(fake, engine, box)

    async def broken_save(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(connections, "save_tokens", broken_save)
    tokens = provider(engine, box, oauth)
    with pytest.raises(RuntimeError):
        await tokens.token()
    assert fake.stats.refreshes == 1
    # The new access token never left the provider: nothing was adopted.
    assert tokens._access is None


@pytest.mark.usefixtures("connected")
async def test_a_refresh_token_used_twice_means_needs_reconnect(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth
) -> None:
    _, refresh = await expire(fake, engine, box)
    await oauth.refresh(refresh)  # another process rotated it and never saved the new pair
    tokens = provider(engine, box, oauth)
    with pytest.raises(NeedsReconnect):
        await tokens.token()
    conn = await connections.get_connection(engine, COMPANY_ID)
    assert conn is not None and conn.status == "needs_reconnect"
    assert conn.last_error and "invalid_grant" in conn.last_error
    assert conn.has_tokens  # nothing deleted: Reconnect replaces them
    refreshes = fake.stats.refreshes
    with pytest.raises(NeedsReconnect):  # later calls fail fast without bothering Whop
        await tokens.token()
    assert fake.stats.refreshes == refreshes


@pytest.mark.usefixtures("connected")
async def test_a_disconnect_stops_the_provider(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth
) -> None:
    await expire(fake, engine, box)
    await connections.disconnect(engine, COMPANY_ID)
    with pytest.raises(AuthError, match="not connected"):
        await provider(engine, box, oauth).token()


@pytest.mark.usefixtures("connected")
async def test_key_rotation_keeps_tokens_readable_and_re_encrypts_on_refresh(
    fake: FakeWhop, engine: AsyncEngine, box: TokenBox, oauth: WhopOAuth
) -> None:
    before, _, _ = await connections.read_tokens(engine, box, COMPANY_ID)
    new_key = Fernet.generate_key()
    rotated = TokenBox(MultiFernet([Fernet(new_key), Fernet(KEY.encode())]))
    assert await provider(engine, rotated, oauth).token() == before  # old ciphertext still readable
    await expire(fake, engine, rotated)
    fresh = await provider(engine, rotated, oauth).token()
    only_new = TokenBox(MultiFernet([Fernet(new_key)]))
    assert (await connections.read_tokens(engine, only_new, COMPANY_ID))[0] == fresh


async def test_the_runtime_reaches_the_oauth_connected_company_with_its_tokens(
    fake: FakeWhop, settings: Settings, engine: AsyncEngine, transport: httpx.AsyncBaseTransport, connected: None
) -> None:
    runtime = Runtime(settings, transports=Transports(whop=transport), store=engine)
    assert await runtime.companies() == [COMPANY_ID]
    found = await runtime.credentials()
    assert found.company_id == COMPANY_ID and isinstance(found.connection_id, int)
    assert "OAuthTokens" in repr(found.tokens) and await found.tokens.token()


async def test_with_no_connection_and_no_api_key_the_runtime_says_what_to_do(
    settings: Settings, engine: AsyncEngine
) -> None:
    runtime = Runtime(settings, store=engine)
    assert await runtime.companies() == []
    with pytest.raises(ConfigError, match="WHOP_API_KEY"):
        await runtime.credentials()


@pytest.mark.usefixtures("connected")
async def test_a_connection_that_needs_reconnecting_pauses_the_sync_unless_an_api_key_is_set(
    settings: Settings, engine: AsyncEngine
) -> None:
    await connections.mark_needs_reconnect(engine, COMPANY_ID, "invalid_grant")
    with pytest.raises(NeedsReconnect):
        await Runtime(settings, store=engine).credentials()
    headless = settings.model_copy(update={"whop_api_key": "key", "whop_company_id": "biz_headless"})
    assert await Runtime(headless, store=engine).companies() == ["biz_headless"]
