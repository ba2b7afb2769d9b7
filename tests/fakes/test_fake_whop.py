"""The fake Whop behaves like the fact sheet says Whop does (and the fixtures are exact)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fakes.whop import (
    MEMBERSHIP_STATUSES,
    NATIVE_VERSION,
    OWNER_USER_ID,
    FakeWhop,
    SeededCompany,
    fixtures,
    s256,
    seed_company,
    seed_fixtures,
    signer,
)

REDIRECT = "http://127.0.0.1:8000/oauth/callback"
NATIVE = {"Api-Version-Date": NATIVE_VERSION}
VERIFIER = "v" * 20 + "-._~" + "x" * 30  # 54 chars of the RFC 7636 alphabet


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_792_497_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeWhop:
    return FakeWhop(clock=clock, redirect_uris=[REDIRECT], access_token_ttl=3600)


@pytest.fixture
def company(fake: FakeWhop) -> SeededCompany:
    return seed_company(
        fake, company_id="biz_test", members=50, memberships=60, products=3, shared_emails=["ann@example.com"]
    )


@pytest.fixture
async def client(fake: FakeWhop) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="http://whop.test") as c:
        yield c


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **NATIVE, **extra}


async def walk(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    repeated: list[tuple[str, str]] | None = None,
    **params: Any,
) -> list[dict[str, Any]]:
    """Follow `after=end_cursor` like the SDK does, until has_next_page is false."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(1000):
        query = [*(repeated or []), *params.items(), *([("after", after)] if after else [])]
        response = await client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["data"]
        if not body["page_info"]["has_next_page"]:
            assert body["page_info"]["end_cursor"] is not None or not body["data"]
            return items
        after = body["page_info"]["end_cursor"]
    raise AssertionError("paging never ended")


# ---- paging ---------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["memberships", "members", "payments", "products", "plans"])
async def test_paging_reaches_the_end_without_duplicates(
    client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany, resource: str
) -> None:
    items = await walk(client, f"/api/v1/{resource}", bearer(company.api_key), account_id=company.company_id, first=7)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids))
    expected = {r.id for r in getattr(fake, resource).values() if r.company_id == company.company_id}
    assert set(ids) == expected
    created = [i["created_at"] for i in items]
    assert created == sorted(created)  # created_at ascending by default


async def test_paging_desc_and_default_page_size(client: httpx.AsyncClient, company: SeededCompany) -> None:
    first_page = (await client.get("/api/v1/memberships", headers=bearer(company.api_key))).json()
    assert len(first_page["data"]) == 10 and first_page["page_info"]["has_next_page"]
    assert first_page["page_info"]["has_previous_page"] is False
    asc = await walk(client, "/api/v1/memberships", bearer(company.api_key), first=25)
    desc = await walk(client, "/api/v1/memberships", bearer(company.api_key), first=25, direction="desc")
    assert [m["id"] for m in desc] == [m["id"] for m in reversed(asc)]


async def test_cursor_survives_changes_between_pages(
    client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany
) -> None:
    page = (await client.get("/api/v1/memberships", params={"first": 20}, headers=bearer(company.api_key))).json()
    seen = [m["id"] for m in page["data"]]
    fake.delete_membership(seen[-1])  # the cursor's own row disappears
    rest = await walk(
        client, "/api/v1/memberships", bearer(company.api_key), first=20, after=page["page_info"]["end_cursor"]
    )
    ids = seen + [m["id"] for m in rest]
    assert len(ids) == len(set(ids)) == len(company.membership_ids)


@pytest.mark.parametrize("params", [{"first": 101}, {"first": 0}, {"first": "ten"}, {"after": "garbage!"}])
async def test_bad_paging_params_are_400(
    client: httpx.AsyncClient, company: SeededCompany, params: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/memberships", params=params, headers=bearer(company.api_key))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "bad_request"
    ok = await client.get("/api/v1/memberships", params={"first": 100}, headers=bearer(company.api_key))
    assert len(ok.json()["data"]) == 60


# ---- auth, versions, scoping ----------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic whop-test-key", "Bearer "])
async def test_bad_credentials_are_401(client: httpx.AsyncClient, company: SeededCompany, auth: str | None) -> None:
    headers = {**NATIVE, **({"Authorization": auth} if auth else {})}
    response = await client.get("/api/v1/memberships", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"


async def test_native_and_legacy_shapes_by_header(client: httpx.AsyncClient, company: SeededCompany) -> None:
    mem_id = company.memberships_by_status["active"][0]
    native = (await client.get(f"/api/v1/memberships/{mem_id}", headers=bearer(company.api_key))).json()
    assert list(native) == list(fixtures.load("membership_native"))  # every §7.1 field, in order
    assert native["account"]["id"] == company.company_id and "current_period_end" in native
    assert set(native["renewal_price"]) == {"amount", "currency", "decimals", "display_decimals"}

    legacy_headers = {"Authorization": f"Bearer {company.api_key}"}
    legacy = (await client.get(f"/api/v1/memberships/{mem_id}", headers=legacy_headers)).json()
    assert list(legacy) == list(fixtures.load("webhook_legacy")["data"])  # §7.5 legacy field set
    assert legacy["company"]["id"] == company.company_id
    assert legacy["renewal_period_end"] == native["current_period_end"]
    assert "account" not in legacy and "current_period_end" not in legacy

    pay_id = company.payments_by_substatus["succeeded"][0]
    native_pay = (await client.get(f"/api/v1/payments/{pay_id}", headers=bearer(company.api_key))).json()
    legacy_pay = (await client.get(f"/api/v1/payments/{pay_id}", headers=legacy_headers)).json()
    assert list(native_pay) == list(fixtures.load("payment_native"))
    assert isinstance(native_pay["total"]["amount"], str)
    assert legacy_pay["total"] == float(native_pay["total"]["amount"])
    assert legacy_pay["company"]["id"] == company.company_id

    member_id = company.member_ids[0]
    native_member = (await client.get(f"/api/v1/members/{member_id}", headers=bearer(company.api_key))).json()
    legacy_member = (await client.get(f"/api/v1/members/{member_id}", headers=legacy_headers)).json()
    assert list(native_member) == list(fixtures.load("member_native"))
    assert isinstance(legacy_member["usd_total_spent"], float) and "updated_at" in legacy_member

    plan = (await client.get(f"/api/v1/plans/{company.plan_ids[0]}", headers=bearer(company.api_key))).json()
    assert isinstance(plan["initial_price"], float) and plan["account"]["id"] == company.company_id


@pytest.mark.parametrize("version", ["2026-07-20", "2024-01-01", "latest"])
async def test_unknown_version_date_is_400(client: httpx.AsyncClient, company: SeededCompany, version: str) -> None:
    headers = {"Authorization": f"Bearer {company.api_key}", "Api-Version-Date": version}
    response = await client.get("/api/v1/memberships", headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert NATIVE_VERSION in error["message"] and NATIVE_VERSION in error["supported_versions"]


async def test_company_scoping_with_an_api_key(
    client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany
) -> None:
    neighbor = company.neighbor
    assert neighbor is not None and neighbor.company_id != company.company_id
    headers = bearer(company.api_key)
    # Default company = the key's own; an account the key cannot see is a 403.
    mems = await walk(client, "/api/v1/memberships", headers, first=100)
    assert {m["account"]["id"] for m in mems} == {company.company_id}
    forbidden = await client.get("/api/v1/memberships", params={"account_id": neighbor.company_id}, headers=headers)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["type"] == "forbidden"
    legacy_alias = await client.get("/api/v1/members", params={"company_id": neighbor.company_id}, headers=headers)
    assert legacy_alias.status_code == 403
    other = await client.get(f"/api/v1/memberships/{neighbor.membership_ids[0]}", headers=headers)
    assert other.status_code == 403

    # The trap: products without account_id are a marketplace search over every company.
    market = await walk(client, "/api/v1/products", headers, first=100)
    assert {p["account"]["id"] for p in market} >= {company.company_id, neighbor.company_id}
    own = await walk(client, "/api/v1/products", headers, first=100, account_id=company.company_id)
    assert {p["account"]["id"] for p in own} == {company.company_id}
    assert len(own) == len(company.product_ids)

    # The neighbor's own key sees only the neighbor.
    theirs = await walk(client, "/api/v1/members", bearer(neighbor.api_key), first=100)
    assert {m["account_id"] for m in theirs} == {neighbor.company_id}
    me = (await client.get("/api/v1/accounts/me", headers=headers)).json()
    assert me["id"] == company.company_id


async def test_keys_and_company_scoped_tokens_read_nothing_of_another_company(
    client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany
) -> None:
    sister = seed_company(fake, company_id="biz_sister", title="Sister Desk", members=4, memberships=4, seed=9)
    rival = company.neighbor
    assert rival is not None and rival.owner_user_id != company.owner_user_id
    reads = "openid member:basic:read member:email:read payment:basic:read plan:basic:read access_pass:basic:read"
    scoped = (await connect(client, scope=reads, company_id=company.company_id))["access_token"]
    user_wide = (await connect(client, scope=reads))["access_token"]  # every company its user owns

    def objects(c: SeededCompany) -> dict[str, list[str]]:
        return {
            "memberships": c.membership_ids,
            "members": c.member_ids,
            "payments": c.payment_ids,
            "plans": c.plan_ids,
            "products": [],  # visible products are public (marketplace); lists still need access
        }

    cases = [(company.api_key, sister), (company.api_key, rival), (scoped, sister), (scoped, rival), (user_wide, rival)]
    for token, other in cases:
        assert (await client.get(f"/api/v1/accounts/{other.company_id}", headers=bearer(token))).status_code == 403
        for resource, ids in objects(other).items():
            listed = await client.get(
                f"/api/v1/{resource}", params={"account_id": other.company_id}, headers=bearer(token)
            )
            assert listed.status_code == 403, (resource, other.company_id)
            for obj_id in ids[:3]:
                read = await client.get(f"/api/v1/{resource}/{obj_id}", headers=bearer(token))
                assert read.status_code == 403, (resource, obj_id)
    # The user-wide token does reach the sister company, as Whop's user tokens do.
    sister_members = await walk(client, "/api/v1/members", bearer(user_wide), first=100, account_id="biz_sister")
    assert {m["account_id"] for m in sister_members} == {"biz_sister"}


async def test_not_found_and_deleted(client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany) -> None:
    headers = bearer(company.api_key)
    missing = await client.get("/api/v1/memberships/mem_doesnotexist", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    victim = company.membership_ids[3]
    fake.delete_membership(victim)
    assert (await client.get(f"/api/v1/memberships/{victim}", headers=headers)).status_code == 404
    listed = await walk(client, "/api/v1/memberships", headers, first=100)
    assert victim not in {m["id"] for m in listed} and len(listed) == 59


async def test_update_membership_bumps_updated_at(
    client: httpx.AsyncClient, fake: FakeWhop, clock: Clock, company: SeededCompany
) -> None:
    mem_id = company.memberships_by_status["active"][0]
    before = (await client.get(f"/api/v1/memberships/{mem_id}", headers=bearer(company.api_key))).json()
    clock.advance(60)
    fake.update_membership(mem_id, status="canceled", canceled_at=clock.now, cancel_option="switching")
    after = (await client.get(f"/api/v1/memberships/{mem_id}", headers=bearer(company.api_key))).json()
    assert after["status"] == "canceled" and after["cancel_option"] == "switching"
    assert after["updated_at"] > before["updated_at"] and after["updated_at"] == "2026-10-20T12:01:00.000Z"
    with pytest.raises(TypeError):
        fake.update_membership(mem_id, no_such_field=1)


async def test_filters(client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany) -> None:
    headers = bearer(company.api_key)
    # Array params repeat the key.
    statuses = [("statuses", "active"), ("statuses", "trialing")]
    got = await walk(client, "/api/v1/memberships", headers, statuses, first=100)
    expected = set(company.memberships_by_status["active"] + company.memberships_by_status["trialing"])
    assert {m["id"] for m in got} == expected
    bad = await client.get("/api/v1/memberships", params={"statuses": "valid"}, headers=headers)
    assert bad.status_code == 400

    product_id = company.product_ids[0]
    by_product = await walk(client, "/api/v1/memberships", headers, first=100, product_ids=product_id)
    assert by_product and {m["product_id"] for m in by_product} == {product_id}
    members = await walk(client, "/api/v1/members", headers, first=100, product_ids=product_id)
    assert {m["id"] for m in members} == {m["member_id"] for m in by_product}

    member_id = by_product[0]["member_id"]
    mine = await walk(client, "/api/v1/memberships", headers, member_id=member_id)
    assert {m["member_id"] for m in mine} == {member_id}
    pays = await walk(client, "/api/v1/payments", headers, membership_id=mine[0]["id"])
    assert {p["membership_id"] for p in pays} <= {mine[0]["id"]}

    cutoff = sorted(fake.memberships[m].created_at for m in company.membership_ids)[30]
    later = await walk(client, "/api/v1/memberships", headers, first=100, created_after=f"{cutoff / 1000:.3f}")
    assert len(later) == 29


# ---- failure injection ----------------------------------------------------------------------


async def test_injected_429_then_success(client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany) -> None:
    fake.inject(status=429, count=3, retry_after=1.0)
    for _ in range(3):
        limited = await client.get("/api/v1/members", headers=bearer(company.api_key))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    ok = await client.get("/api/v1/members", headers=bearer(company.api_key))
    assert ok.status_code == 200
    assert fake.stats.served_429 == 3 and fake.stats.api_calls == 4
    assert fake.stats.calls_per_path["/api/v1/members"] == 4


async def test_injected_5xx_and_path_prefix(client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany) -> None:
    fake.inject(status=502, count=1, path_prefix="/api/v1/payments")
    fake.inject(status=500, count=1)
    assert (await client.get("/api/v1/members", headers=bearer(company.api_key))).status_code == 500
    gateway = await client.get("/api/v1/payments", headers=bearer(company.api_key))
    assert gateway.status_code == 502 and gateway.headers["content-type"].startswith("text/html")
    assert (await client.get("/api/v1/payments", headers=bearer(company.api_key))).status_code == 200


async def test_rate_limit_window(clock: Clock) -> None:
    fake_limited = FakeWhop(clock=clock, rate_limit_per_minute=2, api_key="k")
    seed_company(fake_limited, company_id="biz_rl", members=3, memberships=3, products=1, neighbor=False)
    transport = httpx.ASGITransport(app=fake_limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://whop.test") as c:
        codes = [(await c.get("/api/v1/members", headers=bearer("k"))).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        clock.advance(60)
        assert (await c.get("/api/v1/members", headers=bearer("k"))).status_code == 200


# ---- OAuth ----------------------------------------------------------------------------------


async def consent(
    client: httpx.AsyncClient,
    *,
    decision: str = "approve",
    scope: str = "openid profile email member:basic:read",
    verifier: str = VERIFIER,
    **extra: str,
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": "app_test",
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "st4te",
        "nonce": "n0nce",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        **extra,
    }
    page = await client.get("/oauth/authorize", params=params)
    assert page.status_code == 200, page.text
    assert "<title>Authorize Whop Twenty Bridge</title>" in page.text
    assert ">Approve</button>" in page.text and ">Deny</button>" in page.text
    for item in scope.split():
        assert f"<li>{item}</li>" in page.text
    match = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert match
    return await client.post("/oauth/authorize/decision", data={"request_id": match[1], "decision": decision})


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def exchange(client: httpx.AsyncClient, code: str, verifier: str = VERIFIER, **extra: str) -> httpx.Response:
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "app_test",
        "client_secret": "whop-client-secret",
        "code_verifier": verifier,
        **extra,
    }
    return await client.post("/oauth/token", json=body)


async def connect(client: httpx.AsyncClient, **extra: str) -> dict[str, Any]:
    code = redirect_params(await consent(client, **extra))["code"]
    response = await exchange(client, code)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_oauth_happy_path_and_id_token(client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany) -> None:
    tokens = await connect(client)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["scope"] == "openid profile email member:basic:read"
    info = (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).json()
    assert info == {
        "sub": OWNER_USER_ID,
        "name": "Olive Owner",
        "preferred_username": "oliveowner",
        "picture": None,
        "email": "olive.owner@example.com",
        "email_verified": True,
    }
    # id_token: ES256, verifiable with the published JWKS, carries the nonce.
    head, payload, sig = tokens["id_token"].split(".")
    jwk = (await client.get("/.well-known/jwks.json")).json()["keys"][0]
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_unb64(jwk["x"]), "big"), int.from_bytes(_unb64(jwk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    raw = _unb64(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    claims = json.loads(_unb64(payload))
    assert claims["nonce"] == "n0nce" and claims["aud"] == "app_test" and claims["sub"] == OWNER_USER_ID
    # The token reads the owner's companies like an API key would.
    me = (await client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))).json()
    assert me["id"] == OWNER_USER_ID and me["email"] == "olive.owner@example.com"
    accounts = (await client.get("/api/v1/accounts", headers=bearer(tokens["access_token"]))).json()
    assert [a["id"] for a in accounts["data"]] == [company.company_id]
    assert fake.stats.tokens_issued == 1 and fake.stats.codes_issued == 1


async def test_oauth_token_scoping_and_cross_company_trap(client: httpx.AsyncClient, fake: FakeWhop) -> None:
    one = seed_company(fake, company_id="biz_one", members=12, memberships=12, products=2, seed=3)
    two = seed_company(fake, company_id="biz_two", title="Second Desk", members=10, memberships=10, products=2, seed=4)
    assert one.neighbor is not None and two.neighbor is None  # the neighbor is made once
    token = (await connect(client))["access_token"]
    # Without account_id a user token reads memberships across *all* the user's companies.
    everything = await walk(client, "/api/v1/memberships", bearer(token), first=100)
    assert {m["account"]["id"] for m in everything} == {"biz_one", "biz_two"}
    scoped = await walk(client, "/api/v1/memberships", bearer(token), first=100, account_id="biz_two")
    assert {m["account"]["id"] for m in scoped} == {"biz_two"} and len(scoped) == 10
    # Members need an account with a user token; a company the user does not own is a 403.
    assert (await client.get("/api/v1/members", headers=bearer(token))).status_code == 400
    rival = await client.get("/api/v1/members", params={"account_id": one.neighbor.company_id}, headers=bearer(token))
    assert rival.status_code == 403
    # Authorizing with company_id limits the token, and refresh must repeat it.
    tokens = await connect(client, company_id="biz_one")
    assert (await client.get("/api/v1/accounts/me", headers=bearer(tokens["access_token"]))).json()["id"] == "biz_one"
    denied = await client.get(
        "/api/v1/memberships", params={"account_id": "biz_two"}, headers=bearer(tokens["access_token"])
    )
    assert denied.status_code == 403
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "app_test"}
    no_company = await client.post("/oauth/token", json=refresh)
    assert no_company.status_code == 400 and no_company.json()["error"] == "invalid_grant"


async def test_pkce_is_enforced(client: httpx.AsyncClient, company: SeededCompany) -> None:
    code = redirect_params(await consent(client))["code"]
    wrong = await exchange(client, code, verifier="w" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = await client.post(
        "/oauth/token",
        json={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": "app_test"},
    )
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert (await exchange(client, code)).status_code == 200  # the right verifier still works


async def test_code_is_single_use_and_expires(client: httpx.AsyncClient, clock: Clock, company: SeededCompany) -> None:
    code = redirect_params(await consent(client))["code"]
    first = await exchange(client, code)
    assert first.status_code == 200
    again = await exchange(client, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # Replaying a code revokes what it produced.
    assert (await client.get("/api/v1/memberships", headers=bearer(first.json()["access_token"]))).status_code == 401

    late = redirect_params(await consent(client))["code"]
    clock.advance(301)
    expired = await exchange(client, late)
    assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"


async def test_token_endpoint_client_and_redirect_checks(client: httpx.AsyncClient, company: SeededCompany) -> None:
    code = redirect_params(await consent(client))["code"]
    bad_secret = await exchange(client, code, client_secret="wrong")
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    bad_redirect = await exchange(client, code, redirect_uri="http://127.0.0.1:8000/other")
    assert bad_redirect.status_code == 400 and bad_redirect.json()["error"] == "invalid_grant"
    # Form-encoded bodies work too (third-party clients use them).
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "app_test",
        "code_verifier": VERIFIER,
    }
    assert (await client.post("/oauth/token", data=form)).status_code == 200


async def test_refresh_rotates(client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany) -> None:
    tokens = await connect(client)
    body = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "app_test"}
    rotated = await client.post("/oauth/token", json={**body, "client_secret": "whop-client-secret"})
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert fresh["refresh_token"] != tokens["refresh_token"] and fresh["access_token"] != tokens["access_token"]
    reused = await client.post("/oauth/token", json=body)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    chained = await client.post("/oauth/token", json={**body, "refresh_token": fresh["refresh_token"]})
    assert chained.status_code == 200
    assert fake.stats.refreshes == 2 and fake.stats.tokens_issued == 3


async def test_revoke_kills_refresh_and_access(
    client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany
) -> None:
    tokens = await connect(client)
    revoked = await client.post("/oauth/revoke", json={"token": tokens["refresh_token"], "client_id": "app_test"})
    assert revoked.status_code == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "app_test"}
    assert (await client.post("/oauth/token", json=refresh)).json()["error"] == "invalid_grant"
    api = await client.get("/api/v1/memberships", headers=bearer(tokens["access_token"]))
    assert api.status_code == 401
    assert (await client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))).status_code == 401
    unknown = await client.post("/oauth/revoke", json={"token": "never-issued", "client_id": "app_test"})
    assert unknown.status_code == 200


async def test_expired_access_token_is_401(client: httpx.AsyncClient, clock: Clock, company: SeededCompany) -> None:
    tokens = await connect(client)
    assert (await client.get("/api/v1/memberships", headers=bearer(tokens["access_token"]))).status_code == 200
    clock.advance(3600)
    expired = await client.get("/api/v1/memberships", headers=bearer(tokens["access_token"]))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "app_test"}
    assert (await client.post("/oauth/token", json=refresh)).status_code == 200


async def test_deny_redirects_with_access_denied(client: httpx.AsyncClient) -> None:
    params = redirect_params(await consent(client, decision="deny"))
    assert params["error"] == "access_denied" and params["state"] == "st4te" and params["error_description"]
    assert "code" not in params


@pytest.mark.parametrize(
    "override",
    [
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": REDIRECT + "/"},  # exact match only
        {"client_id": "app_other"},
        {"response_type": "token"},
        {"code_challenge": ""},
        {"code_challenge_method": "plain"},
        {"nonce": ""},  # scope has openid
    ],
)
async def test_bad_authorize_requests_show_an_error_page(client: httpx.AsyncClient, override: dict[str, str]) -> None:
    params = {
        "response_type": "code",
        "client_id": "app_test",
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "s",
        "nonce": "n",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        **override,
    }
    page = await client.get("/oauth/authorize", params=params)
    assert page.status_code == 400 and "location" not in page.headers
    assert "Invalid authorization request" in page.text and "Approve" not in page.text


# ---- seed -----------------------------------------------------------------------------------


async def test_seed_is_deterministic(clock: Clock) -> None:
    def dump(seed: int) -> str:
        fake = FakeWhop(clock=clock)
        seed_company(
            fake, company_id="biz_test", members=30, memberships=40, seed=seed, shared_emails=["a@example.com"]
        )
        tables = ("companies", "users", "products", "plans", "members", "memberships", "payments")
        return json.dumps({t: [fake.render(i) for i in getattr(fake, t)] for t in tables[2:]}, sort_keys=True) + str(
            {t: list(getattr(fake, t)) for t in tables}
        )

    assert dump(1) == dump(1)
    assert dump(1) != dump(2)


async def test_seed_covers_the_cases(client: httpx.AsyncClient, fake: FakeWhop, company: SeededCompany) -> None:
    assert set(company.memberships_by_status) == set(MEMBERSHIP_STATUSES)
    assert len(company.member_ids) == 50 and len(company.membership_ids) == 60 and len(company.product_ids) == 3
    assert {"succeeded", "failed", "refunded", "partially_refunded", "dispute_needs_response"} <= set(
        company.payments_by_substatus
    )
    headers = bearer(company.api_key)
    members = {m["id"]: m for m in await walk(client, "/api/v1/members", headers, first=100)}
    assert company.business_member_ids and all(members[i]["user"] is None for i in company.business_member_ids)
    assert company.no_email_member_ids and all(members[i]["email"] is None for i in company.no_email_member_ids)
    assert members[company.shared_email_member_ids["ann@example.com"]]["email"] == "ann@example.com"
    assert {m["status"] for m in members.values()} == {"joined", "left"}
    # Some members hold several memberships.
    mems = await walk(client, "/api/v1/memberships", headers, first=100)
    per_member: dict[str, int] = {}
    for m in mems:
        per_member[m["member_id"]] = per_member.get(m["member_id"], 0) + 1
    assert max(per_member.values()) >= 2
    failed = (
        await client.get(f"/api/v1/payments/{company.payments_by_substatus['failed'][0]}", headers=headers)
    ).json()
    assert failed["status"] == "open" and failed["failure_message"] and failed["paid_at"] is None
    # A second seed reuses the Whop user behind a shared email (one account per email).
    second = seed_company(
        fake,
        company_id="biz_second",
        title="Second Desk",
        members=5,
        memberships=5,
        seed=9,
        shared_emails=["ann@example.com"],
        no_email_ratio=0,
        business_ratio=0,
    )
    first_user = fake.members[company.shared_email_member_ids["ann@example.com"]].user_id
    assert fake.members[second.shared_email_member_ids["ann@example.com"]].user_id == first_user
    assert second.api_key != company.api_key and second.neighbor is None


async def test_fixture_objects_are_served_verbatim(client: httpx.AsyncClient, fake: FakeWhop) -> None:
    fx = seed_fixtures(fake)
    headers = bearer(fx.api_key)
    for name, path in [
        ("membership_native", "/api/v1/memberships/mem_8kQmZt3VbN1xLp"),
        ("product_native", "/api/v1/products/prod_4GhJk2LmPq9Rs"),
        ("payment_native", "/api/v1/payments/pay_Qw3Er5Ty7Ui9Op"),
        ("member_native", "/api/v1/members/mber_Zx81QwLk5Tn0B"),
    ]:
        response = await client.get(path, headers=headers)
        assert response.json() == fixtures.load(name), name
        assert list(response.json()) == list(fixtures.load(name))


# ---- webhooks -------------------------------------------------------------------------------


def test_signature_matches_the_fact_sheet_fixture() -> None:
    envelope = fixtures.load("webhook_native")
    assert envelope["data"] == fixtures.load("membership_native")
    body = signer.compact(envelope)
    assert len(body) == 1412
    assert hashlib.sha256(body).hexdigest() == fixtures.WEBHOOK_BODY_SHA256
    signature = signer.sign(fixtures.WEBHOOK_SECRET, fixtures.WEBHOOK_ID, fixtures.WEBHOOK_TIMESTAMP, body)
    assert signature == fixtures.WEBHOOK_SIGNATURE == "v1,DRYyX8co+r4UEDZTwTKUI9fYGj4NQiayNub1ZtvxHro="
    same_body, headers = signer.delivery(fixtures.WEBHOOK_SECRET, envelope, timestamp=fixtures.WEBHOOK_TIMESTAMP)
    assert same_body == body
    assert headers == {
        "content-type": "application/json",
        "webhook-id": "msg_2xQp9LmVt7RkWz4NbC8sYd1F",
        "webhook-timestamp": "1792497600",
        "webhook-signature": "v1,DRYyX8co+r4UEDZTwTKUI9fYGj4NQiayNub1ZtvxHro=",
    }
    rotated = signer.signed_headers(
        fixtures.WEBHOOK_SECRET,
        body,
        webhook_id=fixtures.WEBHOOK_ID,
        timestamp=fixtures.WEBHOOK_TIMESTAMP,
        extra_signatures=["v1,AAAA"],
    )
    assert rotated["webhook-signature"] == "v1,AAAA " + fixtures.WEBHOOK_SIGNATURE


def test_fake_event_reproduces_the_fixture_envelope(fake: FakeWhop) -> None:
    seed_fixtures(fake)
    envelope = fake.event(
        "membership.activated",
        "mem_8kQmZt3VbN1xLp",
        webhook_id=fixtures.WEBHOOK_ID,
        timestamp=fixtures.WEBHOOK_TIMESTAMP,
    )
    assert envelope == fixtures.load("webhook_native")
    assert signer.compact(envelope) == signer.compact(fixtures.load("webhook_native"))
    legacy = fake.event("membership.deactivated", "mem_8kQmZt3VbN1xLp", legacy=True)
    assert list(legacy) == list(fixtures.load("webhook_legacy"))
    assert legacy["company_id"] == "biz_Hq2LmVx9TcR4sA" and "account" not in legacy["data"]


async def test_deliver_posts_a_verifiable_delivery(fake: FakeWhop, clock: Clock, company: SeededCompany) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append((await request.body(), dict(request.headers)))
        return JSONResponse({"ok": True})

    receiver = Starlette(routes=[Route("/webhooks/whop", hook, methods=["POST"])])
    secret = "ws_local_secret"
    mem_id = company.membership_ids[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver), base_url="http://bridge.test") as c:
        changed = fake.update_membership(mem_id, status="canceled")
        response = await fake.deliver(
            "http://bridge.test/webhooks/whop", "membership.deactivated", changed, secret, client=c
        )
        assert response.status_code == 200
        await fake.redeliver(fake.deliveries[-1], client=c)
    (body, headers), (body2, headers2) = received
    envelope = json.loads(body)
    assert envelope["type"] == "membership.deactivated" and envelope["account_id"] == company.company_id
    assert envelope["data"]["id"] == mem_id and envelope["data"]["status"] == "canceled"
    assert envelope["id"] == headers["webhook-id"] and headers["webhook-timestamp"] == str(int(clock.now))
    expected = signer.sign(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    assert headers["webhook-signature"] == expected
    assert body2 == body and headers2["webhook-id"] == headers["webhook-id"]  # at-least-once duplicate


def test_serve_on_loopback(fake: FakeWhop, company: SeededCompany) -> None:
    with fake.serve() as base_url:
        response = httpx.get(f"{base_url}/api/v1/accounts/me", headers=bearer(company.api_key), timeout=5)
    assert response.status_code == 200 and response.json()["id"] == company.company_id
