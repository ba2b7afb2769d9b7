"""The Whop OAuth client against the fake Whop (which enforces PKCE, single-use codes, rotation)
and against respx for the error mapping."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from bridge.config import load_settings
from bridge.errors import AuthError, NeedsReconnect, RateLimited, RetryableError
from bridge.whop.oauth import (
    DEFAULT_SCOPES,
    TokenSet,
    WhopOAuth,
    code_challenge,
    id_token_claims,
    new_code_verifier,
    new_nonce,
    new_state,
    redirect_uri,
)
from fakes.whop import FakeWhop, s256, seed_company
from tests.web.conftest import (
    BRIDGE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    COMPANY_ID,
    COMPANY_TITLE,
    WHOP_URL,
    Clock,
    Recorder,
    authorization_code,
)

CALLBACK = f"{BRIDGE_URL}/oauth/callback"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeWhop:
    fake = FakeWhop(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[CALLBACK],
        require_client_secret=True,
        clock=clock,
    )
    seed_company(fake, company_id=COMPANY_ID, title=COMPANY_TITLE, members=3, products=1)
    return fake


@pytest.fixture
def recorder(fake: FakeWhop) -> Recorder:
    return Recorder(httpx.ASGITransport(app=fake))


@pytest.fixture
def oauth(recorder: Recorder) -> WhopOAuth:
    return WhopOAuth(WHOP_URL, CLIENT_ID, CLIENT_SECRET, CALLBACK, transport=recorder)


async def _code(fake: FakeWhop, oauth: WhopOAuth, verifier: str, nonce: str = "nonce-1") -> str:
    url = oauth.authorize_url(state=new_state(), nonce=nonce, code_challenge=code_challenge(verifier))
    return await authorization_code(fake, url)


# PKCE, state, the authorize URL -------------------------------------------------------------------


def test_verifier_follows_rfc7636_and_the_challenge_is_s256() -> None:
    verifier = new_code_verifier()
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
    assert code_challenge(verifier) == s256(verifier)  # the fake's own, independent S256
    assert len(code_challenge(verifier)) == 43 and "=" not in code_challenge(verifier)
    assert len({new_code_verifier() for _ in range(50)}) == 50
    assert len({new_state() for _ in range(50)}) == 50 and len({new_nonce() for _ in range(50)}) == 50


def test_authorize_url_carries_everything_whop_needs() -> None:
    settings = load_settings(
        WHOP_CLIENT_ID=CLIENT_ID, BRIDGE_PUBLIC_URL="https://bridge.example.com/", WHOP_API_URL=WHOP_URL
    )
    oauth = WhopOAuth.from_settings(settings)
    url = oauth.authorize_url(state="st", nonce="no", code_challenge="ch")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{WHOP_URL}/oauth/authorize"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "https://bridge.example.com/oauth/callback",
        "scope": " ".join(DEFAULT_SCOPES),
        "state": "st",
        "nonce": "no",
        "code_challenge": "ch",
        "code_challenge_method": "S256",
    }
    assert redirect_uri(settings) == "https://bridge.example.com/oauth/callback"
    for scope in ("openid", "member:basic:read", "member:email:read", "access_pass:basic:read", "plan:basic:read"):
        assert scope in q["scope"].split()


def test_secrets_stay_out_of_reprs() -> None:
    tokens = TokenSet(access_token="AT-secret-1", refresh_token="RT-secret-2", expires_at=None, id_token="x.y.z")
    oauth = WhopOAuth(WHOP_URL, CLIENT_ID, "client-secret-3", CALLBACK)
    for text in (repr(tokens), repr(oauth)):
        assert "secret-" not in text


# Against the fake Whop ---------------------------------------------------------------------------


async def test_code_exchange_sends_pkce_and_secret_as_json(
    fake: FakeWhop, oauth: WhopOAuth, recorder: Recorder
) -> None:
    verifier = new_code_verifier()
    code = await _code(fake, oauth, verifier, nonce="nonce-xyz")
    tokens = await oauth.exchange_code(code, verifier)
    assert tokens.access_token and tokens.refresh_token
    assert tokens.expires_at is not None and 3500 < (tokens.expires_at - datetime.now(UTC)).total_seconds() <= 3600
    claims = id_token_claims(tokens.id_token or "")
    assert claims["nonce"] == "nonce-xyz" and claims["aud"] == CLIENT_ID and claims["sub"] == "user_owner"
    (sent,) = recorder.to("/oauth/token")
    assert sent.headers["content-type"] == "application/json"
    body = json.loads(sent.content)
    assert body == {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }


async def test_a_wrong_verifier_is_refused_by_whop(fake: FakeWhop, oauth: WhopOAuth) -> None:
    code = await _code(fake, oauth, new_code_verifier())
    with pytest.raises(NeedsReconnect, match="invalid_grant"):
        await oauth.exchange_code(code, new_code_verifier())
    assert fake.stats.tokens_issued == 0


async def test_a_code_works_once(fake: FakeWhop, oauth: WhopOAuth) -> None:
    verifier = new_code_verifier()
    code = await _code(fake, oauth, verifier)
    await oauth.exchange_code(code, verifier)
    with pytest.raises(NeedsReconnect, match="already been used"):
        await oauth.exchange_code(code, verifier)


async def test_an_expired_code_is_refused(fake: FakeWhop, oauth: WhopOAuth, clock: Clock) -> None:
    verifier = new_code_verifier()
    code = await _code(fake, oauth, verifier)
    clock.advance(301)
    with pytest.raises(NeedsReconnect, match="expired"):
        await oauth.exchange_code(code, verifier)


async def test_refresh_rotates_and_the_old_refresh_token_is_refused(fake: FakeWhop, oauth: WhopOAuth) -> None:
    verifier = new_code_verifier()
    first = await oauth.exchange_code(await _code(fake, oauth, verifier), verifier)
    assert first.refresh_token
    second = await oauth.refresh(first.refresh_token)
    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    with pytest.raises(NeedsReconnect):
        await oauth.refresh(first.refresh_token)
    third = await oauth.refresh(second.refresh_token)
    assert third.access_token


async def test_userinfo_accounts_and_revoke(fake: FakeWhop, oauth: WhopOAuth, recorder: Recorder) -> None:
    verifier = new_code_verifier()
    tokens = await oauth.exchange_code(await _code(fake, oauth, verifier), verifier)
    info = await oauth.userinfo(tokens.access_token)
    assert info["sub"] == "user_owner" and info["email"]
    accounts = await oauth.accounts(tokens.access_token)
    assert [(a["id"], a["title"]) for a in accounts] == [(COMPANY_ID, COMPANY_TITLE)]
    assert recorder.to("/api/v1/accounts")[0].headers["api-version-date"]
    assert tokens.refresh_token
    await oauth.revoke(tokens.refresh_token)
    assert fake.stats.revocations == 1
    with pytest.raises(NeedsReconnect):
        await oauth.refresh(tokens.refresh_token)
    with pytest.raises(AuthError):
        await oauth.userinfo(tokens.access_token)  # the grant's access tokens die with it


# Error mapping (respx) ---------------------------------------------------------------------------------


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def mocked(sleeps: Sleeps) -> WhopOAuth:
    return WhopOAuth(WHOP_URL, CLIENT_ID, CLIENT_SECRET, CALLBACK, sleep=sleeps)


@respx.mock(base_url=WHOP_URL)
async def test_5xx_on_the_token_endpoint_is_retryable_and_not_repeated(
    respx_mock: respx.MockRouter, mocked: WhopOAuth
) -> None:
    route = respx_mock.post("/oauth/token").respond(503, text="<html>bad gateway</html>")
    with pytest.raises(RetryableError) as caught:
        await mocked.refresh("rt-value")
    assert not isinstance(caught.value, NeedsReconnect)
    assert route.call_count == 1  # a refresh that may have reached Whop is never sent twice
    assert "rt-value" not in str(caught.value)


@respx.mock(base_url=WHOP_URL)
async def test_429_honours_retry_after(respx_mock: respx.MockRouter, mocked: WhopOAuth, sleeps: Sleeps) -> None:
    respx_mock.post("/oauth/token").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "rate_limit_exceeded"}),
            httpx.Response(200, json={"access_token": "a", "refresh_token": "r", "expires_in": 3600}),
        ]
    )
    tokens = await mocked.refresh("rt")
    assert tokens.access_token == "a" and sleeps.calls == [2.0]


@respx.mock(base_url=WHOP_URL)
async def test_a_long_retry_after_goes_back_to_the_caller(respx_mock: respx.MockRouter, mocked: WhopOAuth) -> None:
    respx_mock.post("/oauth/token").respond(429, headers={"Retry-After": "120"}, json={"error": "rate_limit_exceeded"})
    with pytest.raises(RateLimited) as caught:
        await mocked.refresh("rt")
    assert caught.value.retry_after == 120


@respx.mock(base_url=WHOP_URL)
async def test_invalid_client_is_an_auth_error_not_a_reconnect(respx_mock: respx.MockRouter, mocked: WhopOAuth) -> None:
    respx_mock.post("/oauth/token").respond(401, json={"error": "invalid_client", "error_description": "bad secret"})
    with pytest.raises(AuthError) as caught:
        await mocked.refresh("rt")
    assert not isinstance(caught.value, NeedsReconnect)
    assert CLIENT_SECRET not in str(caught.value)


@respx.mock(base_url=WHOP_URL)
async def test_idempotent_reads_retry_5xx_and_network_errors(
    respx_mock: respx.MockRouter, mocked: WhopOAuth, sleeps: Sleeps
) -> None:
    respx_mock.get("/oauth/userinfo").mock(
        side_effect=[httpx.ConnectError("down"), httpx.Response(502), httpx.Response(200, json={"sub": "user_1"})]
    )
    assert (await mocked.userinfo("at"))["sub"] == "user_1"
    assert len(sleeps.calls) == 2


@respx.mock(base_url=WHOP_URL)
async def test_rate_limit_exceeded_in_any_status_is_waited_out_like_a_429(
    respx_mock: respx.MockRouter, mocked: WhopOAuth, sleeps: Sleeps
) -> None:
    """Before: a `rate_limit_exceeded` with a status other than 429 was raised at once."""
    respx_mock.post("/oauth/token").mock(
        side_effect=[
            httpx.Response(400, headers={"Retry-After": "1"}, json={"error": "rate_limit_exceeded"}),
            httpx.Response(200, json={"access_token": "a", "refresh_token": "r", "expires_in": 3600}),
        ]
    )
    assert (await mocked.refresh("rt")).access_token == "a"
    assert sleeps.calls == [1.0]


@respx.mock(base_url=WHOP_URL)
async def test_a_page_that_is_not_json_is_a_blip_retried_only_where_repeating_is_safe(
    respx_mock: respx.MockRouter, mocked: WhopOAuth, sleeps: Sleeps
) -> None:
    """Before: an AuthError. A proxy's page is not Whop refusing the grant; a refresh that may
    have rotated the token is still never sent twice."""
    page = httpx.Response(200, text="<html>maintenance</html>")
    token = respx_mock.post("/oauth/token").mock(return_value=page)
    with pytest.raises(RetryableError):
        await mocked.refresh("rt")
    assert token.call_count == 1
    respx_mock.get("/oauth/userinfo").mock(side_effect=[page, httpx.Response(200, json={"sub": "user_1"})])
    assert (await mocked.userinfo("at"))["sub"] == "user_1"
    assert len(sleeps.calls) == 1


@respx.mock(base_url=WHOP_URL)
async def test_a_refresh_is_tried_three_times_at_most_while_a_person_waits(
    respx_mock: respx.MockRouter, mocked: WhopOAuth, sleeps: Sleeps
) -> None:
    route = respx_mock.post("/oauth/token").respond(
        429, headers={"Retry-After": "2"}, json={"error": "rate_limit_exceeded"}
    )
    with pytest.raises(RateLimited):
        await mocked.refresh("rt")
    assert route.call_count == 3 and sleeps.calls == [2.0, 2.0]
