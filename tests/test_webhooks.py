"""Webhook verification (Standard Webhooks as Whop does it) and the receiving endpoint."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, MultiFernet
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from bridge import metrics
from bridge.crypto import TokenBox
from bridge.errors import AuthError
from bridge.store import db, inbox, tables
from bridge.store.connections import SecretCache
from bridge.webhooks import MAX_BODY, WebhookReceiver, WebhookVerificationError, verify
from fakes.whop import fixtures

SECRET = "ws_test_4f1c9e2d7a6b5c3d8e0f1a2b3c4d5e6f"
OTHER_SECRET = "ws_other_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
NOW = 1792497600  # 2026-10-20T12:00:00Z, the §7.4 delivery's timestamp

# §7.1 membership, verbatim and in order; §7.4 wraps it in the pinned envelope.
MEMBERSHIP_JSON = json.dumps(fixtures.load("membership_native"))  # §7.1, key order kept
FIXTURE_ID = "msg_2xQp9LmVt7RkWz4NbC8sYd1F"
FIXTURE_SIGNATURE = "v1,DRYyX8co+r4UEDZTwTKUI9fYGj4NQiayNub1ZtvxHro="
FIXTURE_BODY = json.dumps(
    {
        "id": FIXTURE_ID,
        "api_version": "v1",
        "api_version_date": "2026-10-15-1",
        "timestamp": "2026-10-20T12:00:00.000Z",
        "type": "membership.activated",
        "account_id": "biz_Hq2LmVx9TcR4sA",
        "data": json.loads(MEMBERSHIP_JSON),
    },
    separators=(",", ":"),
).encode()
FIXTURE_HEADERS = {
    "content-type": "application/json",
    "webhook-id": FIXTURE_ID,
    "webhook-timestamp": str(NOW),
    "webhook-signature": FIXTURE_SIGNATURE,
}


# A small signer of our own (independent of the code under test) ---------------------------------


def signature(body: bytes, *, msg_id: str, timestamp: int | str, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed(body: bytes, *, msg_id: str | None = None, timestamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex[:24]}"
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(body, msg_id=msg_id, timestamp=timestamp, secret=secret),
    }


def envelope(**fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


# verify(): the §7.4 fixture and the six Standard Webhooks cases -----------------------------------


def test_fixture_body_is_the_documented_bytes() -> None:
    assert len(FIXTURE_BODY) == 1412
    assert hashlib.sha256(FIXTURE_BODY).hexdigest() == (
        "ced76cac325f2d9f1fcc03515c8cc61c8b4e38a2db84a0d8a714665c8370327f"
    )


def test_fixture_verifies_with_a_frozen_clock() -> None:
    verify(FIXTURE_HEADERS, FIXTURE_BODY, [SECRET], now=NOW + 120)
    # Our signer agrees with the documented signature (the key is the raw `ws_…` bytes).
    assert signature(FIXTURE_BODY, msg_id=FIXTURE_ID, timestamp=NOW) == FIXTURE_SIGNATURE


def test_fixture_is_refused_by_the_real_clock() -> None:
    # 2026-10-20 is not "now" for long; without a frozen clock the delivery must be stale or future.
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify(FIXTURE_HEADERS, FIXTURE_BODY, [SECRET], now=NOW + 10 * 86400)


def test_valid() -> None:
    body = envelope(type="member.updated", data={"id": "mber_1"})
    verify(signed(body), body, [SECRET], now=NOW)


def test_several_signatures_one_valid() -> None:
    body = b'{"type":"x"}'
    headers = signed(body, msg_id="msg_multi")
    wrong = signature(body, msg_id="msg_multi", timestamp=NOW, secret=OTHER_SECRET)
    headers["webhook-signature"] = f"v1a,ZmFrZQ== v1,!!notbase64!! {wrong} {headers['webhook-signature']} v2,xx"
    verify(headers, body, [SECRET], now=NOW)


def test_tampered_body() -> None:
    body = envelope(type="membership.activated", data={"status": "active"})
    headers = signed(body)
    with pytest.raises(WebhookVerificationError, match="signature mismatch"):
        verify(headers, body.replace(b"active", b"canceled"), [SECRET], now=NOW)
    # Re-serializing the same JSON (spaces) is a different body too.
    with pytest.raises(WebhookVerificationError):
        verify(headers, json.dumps(json.loads(body)).encode(), [SECRET], now=NOW)


def test_wrong_secret() -> None:
    body = b"{}"
    with pytest.raises(WebhookVerificationError, match="signature mismatch"):
        verify(signed(body, secret=OTHER_SECRET), body, [SECRET], now=NOW)
    # A Standard Webhooks library would base64-decode a key; Whop's key is the literal bytes.
    decoded_style = base64.b64encode(SECRET.encode()).decode()
    with pytest.raises(WebhookVerificationError):
        verify(signed(body, secret=decoded_style), body, [SECRET], now=NOW)


@pytest.mark.parametrize(
    ("skew", "accepted"),
    [(0, True), (300, True), (-300, True), (301, False), (-301, False), (86400, False), (-86400, False)],
)
def test_stale_and_future_timestamps(skew: int, accepted: bool) -> None:
    body = b"{}"
    headers = signed(body, timestamp=NOW)
    if accepted:
        verify(headers, body, [SECRET], now=NOW + skew)
    else:
        with pytest.raises(WebhookVerificationError, match="too old" if skew > 0 else "future"):
            verify(headers, body, [SECRET], now=NOW + skew)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers(missing: str) -> None:
    body = b"{}"
    headers = signed(body)
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match=f"missing {missing}"):
        verify(headers, body, [SECRET], now=NOW)
    headers[missing] = ""
    with pytest.raises(WebhookVerificationError, match=f"missing {missing}"):
        verify(headers, body, [SECRET], now=NOW)


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("webhook-timestamp", "1792497600.5", "malformed webhook-timestamp"),
        ("webhook-timestamp", " 1792497600", "malformed webhook-timestamp"),
        ("webhook-timestamp", "+1792497600", "malformed webhook-timestamp"),
        ("webhook-timestamp", "1_792_497_600", "malformed webhook-timestamp"),
        ("webhook-timestamp", "9" * 40, "malformed webhook-timestamp"),
        ("webhook-id", "msg " + "x", "malformed webhook-id"),
        ("webhook-id", "m" * 129, "malformed webhook-id"),
        ("webhook-id", "msg_\x00", "malformed webhook-id"),
        ("webhook-signature", "v1a,abc v2,def", "no v1 signature"),
        ("webhook-signature", "v1,%%%", "no v1 signature"),
        ("webhook-signature", "garbage", "no v1 signature"),
    ],
)
def test_malformed_headers(header: str, value: str, reason: str) -> None:
    headers = signed(b"{}")
    headers[header] = value
    with pytest.raises(WebhookVerificationError, match=reason):
        verify(headers, b"{}", [SECRET], now=NOW)


def test_secret_rotation_accepts_either_secret() -> None:
    body = b'{"type":"payment.succeeded"}'
    for secret in (SECRET, OTHER_SECRET):
        verify(signed(body, secret=secret), body, [SECRET, OTHER_SECRET], now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify(signed(body, secret="ws_retired"), body, [SECRET, OTHER_SECRET], now=NOW)


@pytest.mark.parametrize("secrets", [[], [""], ["  "]])
def test_no_secret_configured_fails_closed(secrets: list[str]) -> None:
    body = b"{}"
    with pytest.raises(WebhookVerificationError, match="no webhook secret"):
        verify(signed(body), body, secrets, now=NOW)
    # Not even a body "signed" with an empty key gets through.
    with pytest.raises(WebhookVerificationError):
        verify(signed(body, secret=""), body, secrets, now=NOW)


def test_header_names_are_case_insensitive_and_a_lone_secret_is_fine() -> None:
    body = b"{}"
    headers = {k.title(): v for k, v in signed(body).items()}
    verify(headers, body, SECRET, now=NOW)


def test_error_is_an_auth_error_and_never_names_the_secret() -> None:
    body = b"{}"
    with pytest.raises(AuthError) as info:
        verify(signed(body, secret=OTHER_SECRET), body, [SECRET], now=NOW)
    assert isinstance(info.value, WebhookVerificationError)
    assert SECRET not in str(info.value) and OTHER_SECRET not in str(info.value)


# The endpoint --------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/bridge.db"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(tables.metadata.drop_all)
        await conn.run_sync(tables.metadata.create_all)
    yield engine
    await engine.dispose()


class Wakeups:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def wakeups() -> Wakeups:
    return Wakeups()


class Outcomes:
    """What `/metrics` counts of deliveries (bridge_webhooks_total by outcome) since the test began."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> dict[str, float]:
        return {
            s.labels["outcome"]: s.value
            for m in metrics.WEBHOOKS.collect()
            for s in m.samples
            if s.name.endswith("_total")
        }

    def __getitem__(self, outcome: str) -> int:
        return int(self._now().get(outcome, 0.0) - self.start.get(outcome, 0.0))


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest.fixture
def receiver(engine: AsyncEngine, wakeups: Wakeups) -> WebhookReceiver:
    return WebhookReceiver(engine, [SECRET], clock=lambda: float(NOW), on_stored=wakeups)


def client_for(receiver: WebhookReceiver) -> httpx.AsyncClient:
    app = Starlette(routes=[receiver.route()])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge")


@pytest.fixture
async def client(receiver: WebhookReceiver) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(receiver) as client:
        yield client


async def rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    t = tables.webhook_inbox
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(t).order_by(t.c.received_at, t.c.webhook_id))
        return [dict(r._mapping) for r in result]


async def test_valid_delivery_is_stored_once_and_acknowledged(
    client: httpx.AsyncClient, engine: AsyncEngine, outcomes: Outcomes, wakeups: Wakeups
) -> None:
    response = await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    [row] = await rows(engine)
    assert row["webhook_id"] == FIXTURE_ID
    assert row["body"].encode() == FIXTURE_BODY  # the raw bytes, not a re-serialization
    assert (row["event_type"], row["company_id"], row["status"]) == (
        "membership.activated",
        "biz_Hq2LmVx9TcR4sA",
        "pending",
    )
    assert db.as_utc(row["received_at"]).timestamp() == NOW
    assert wakeups.count == 1
    counted = [outcomes[k] for k in ("received", "accepted", "duplicate", "rejected", "store_error")]
    assert counted == [1, 1, 0, 0, 0]


async def test_duplicate_id_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, outcomes: Outcomes, wakeups: Wakeups
) -> None:
    await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
    again = await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    # Same id, another (validly signed) body: still the first one is kept.
    other = envelope(type="membership.deactivated", account_id="biz_other")
    replaced = await client.post("/webhooks/whop", content=other, headers=signed(other, msg_id=FIXTURE_ID))
    assert replaced.json() == {"status": "duplicate"}
    [row] = await rows(engine)
    assert row["body"].encode() == FIXTURE_BODY and row["event_type"] == "membership.activated"
    assert wakeups.count == 1
    assert (outcomes["accepted"], outcomes["duplicate"]) == (1, 2)


@pytest.mark.parametrize(
    "tamper",
    ["body", "secret", "stale", "future", "no-signature", "no-id", "no-timestamp"],
)
async def test_bad_deliveries_are_refused_and_not_stored(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    outcomes: Outcomes,
    tamper: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = envelope(type="membership.activated", account_id="biz_1")
    headers = signed(body, msg_id="msg_bad")
    if tamper == "body":
        body = body.replace(b"biz_1", b"biz_2")
    elif tamper == "secret":
        headers = signed(body, msg_id="msg_bad", secret=OTHER_SECRET)
    elif tamper == "stale":
        headers = signed(body, msg_id="msg_bad", timestamp=NOW - 301)
    elif tamper == "future":
        headers = signed(body, msg_id="msg_bad", timestamp=NOW + 301)
    else:
        del headers["webhook-" + tamper.removeprefix("no-")]
    with caplog.at_level(logging.WARNING, logger="bridge.webhooks"):
        response = await client.post("/webhooks/whop", content=body, headers=headers)
    assert (response.status_code, response.json()) == (401, {"error": "invalid signature"})
    assert await rows(engine) == []
    assert outcomes["rejected"] == 1
    assert "webhook rejected" in caplog.text and SECRET not in caplog.text


async def test_no_secret_configured_refuses_everything(engine: AsyncEngine) -> None:
    receiver = WebhookReceiver(engine, [], clock=lambda: float(NOW))
    async with client_for(receiver) as client:
        response = await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
    assert response.status_code == 401
    assert await rows(engine) == []


async def test_secrets_are_read_per_request(engine: AsyncEngine) -> None:
    configured = [OTHER_SECRET]
    receiver = WebhookReceiver(engine, lambda: configured, clock=lambda: float(NOW))
    async with client_for(receiver) as client:
        assert (await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)).status_code == 401
        configured.append(SECRET)  # rotated in without a restart
        assert (await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)).status_code == 200


async def test_oversized_body_is_refused(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    body = b'{"type":"x","pad":"' + b"a" * MAX_BODY + b'"}'
    response = await client.post("/webhooks/whop", content=body, headers=signed(body))
    assert (response.status_code, response.json()) == (413, {"error": "payload too large"})
    assert response.headers["connection"] == "close"  # the rest of a body is not read
    # Exactly at the limit is fine.
    fits = b'"' + b"a" * (MAX_BODY - 2) + b'"'
    assert (await client.post("/webhooks/whop", content=fits, headers=signed(fits))).status_code == 200
    assert len(await rows(engine)) == 1


async def test_declared_oversized_body_is_refused_without_reading(receiver: WebhookReceiver) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/whop",
        "query_string": b"",
        "headers": [(b"content-length", b"2000000"), *((k.encode(), v.encode()) for k, v in FIXTURE_HEADERS.items())],
    }
    await receiver(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_streamed_body_over_the_cap_is_refused(engine: AsyncEngine) -> None:
    receiver = WebhookReceiver(engine, [SECRET], clock=lambda: float(NOW), max_body=1000)
    body = b"x" * 3000

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 500):
            yield body[i : i + 500]

    async with client_for(receiver) as client:
        response = await client.post("/webhooks/whop", content=chunks(), headers=signed(body))
    assert "content-length" not in response.request.headers  # really chunked
    assert response.status_code == 413
    assert await rows(engine) == []


@pytest.mark.parametrize(
    ("body", "event_type", "company"),
    [
        (b"not json at all", None, None),
        (b"", None, None),
        (b'{"type":"membership.activated","data":null}', "membership.activated", None),
        (b'[{"type":"membership.activated"}]', None, None),
        (b'"just a string"', None, None),
        (b"\xff\xfe\x00 binary \x00", None, None),
        (b'{"type":"bad\\u0000type","account_id":"biz_\\u0000"}', None, None),
        (b'{"type":"' + b"t" * 200 + b'","account_id":42}', None, None),
        (b'{"type":"member.updated","data":[1,2]}', "member.updated", None),
        (b"[" * 100_000, None, None),
        (b'{"type":"membership.deactivated","company_id":"biz_legacy"}', "membership.deactivated", "biz_legacy"),
        (b'{"action":"membership.went_valid","company":{"id":"biz_app"}}', None, "biz_app"),
        (b'{"type":"payment.succeeded","data":{"account_id":"biz_inner"}}', "payment.succeeded", "biz_inner"),
        (b'{"type":"membership.updated","data":{"company":{"id":"biz_old"}}}', "membership.updated", "biz_old"),
    ],
)
async def test_odd_bodies_after_a_valid_signature_are_kept(
    client: httpx.AsyncClient, engine: AsyncEngine, body: bytes, event_type: str | None, company: str | None
) -> None:
    response = await client.post("/webhooks/whop", content=body, headers=signed(body))
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    [row] = await rows(engine)
    assert (row["event_type"], row["company_id"]) == (event_type, company)
    assert "\x00" not in row["body"]
    if b"\x00" not in body and b"\xff" not in body:
        assert row["body"].encode() == body


async def test_legacy_envelope_is_routed_by_company_id(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    body = envelope(
        id="msg_legacy",
        api_version="v1",
        timestamp="2025-01-01T00:00:00.000Z",
        type="membership.deactivated",
        company_id="biz_Hq2LmVx9TcR4sA",
        data={"id": "mem_8kQmZt3VbN1xLp"},
    )
    assert (await client.post("/webhooks/whop", content=body, headers=signed(body))).status_code == 200
    [row] = await rows(engine)
    assert row["company_id"] == "biz_Hq2LmVx9TcR4sA"


async def test_only_post_is_routed(client: httpx.AsyncClient, receiver: WebhookReceiver) -> None:
    assert (await client.get("/webhooks/whop")).status_code == 405
    # Mounted as a bare ASGI app it answers 405 itself.
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as bare:
        assert (await bare.get("/")).status_code == 405
        assert (await bare.post("/", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)).status_code == 200


async def test_a_failing_wakeup_does_not_fail_the_delivery(engine: AsyncEngine) -> None:
    def broken() -> None:
        raise RuntimeError("worker gone")

    receiver = WebhookReceiver(engine, [SECRET], clock=lambda: float(NOW), on_stored=broken)
    async with client_for(receiver) as client:
        response = await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
    assert response.status_code == 200
    assert len(await rows(engine)) == 1


@pytest.mark.parametrize(
    "broken",
    [
        "sqlite:////nonexistent-dir/for/sure/bridge.db",
        pytest.param("postgresql://postgres@127.0.0.1:5432/bridge_no_such_database", marks=pytest.mark.postgres),
        pytest.param("postgresql://postgres@127.0.0.1:1/test", marks=pytest.mark.postgres),
        "sqlite:///{tmp}/no-tables.db",
    ],
)
@pytest.mark.usefixtures("sqlite_threads_joined")
async def test_store_unavailable_answers_503(
    broken: str, tmp_path: object, wakeups: Wakeups, outcomes: Outcomes
) -> None:
    engine = db.create_engine(broken.format(tmp=tmp_path))
    receiver = WebhookReceiver(engine, [SECRET], clock=lambda: float(NOW), on_stored=wakeups)
    try:
        async with client_for(receiver) as client:
            response = await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
    finally:
        await engine.dispose()
    assert (response.status_code, response.json()) == (503, {"error": "store unavailable"})
    assert (outcomes["store_error"], wakeups.count) == (1, 0)


@pytest.mark.usefixtures("sqlite_threads_joined")
async def test_company_secrets_that_cannot_be_read_answer_503_not_401(
    tmp_path: object, wakeups: Wakeups, outcomes: Outcomes
) -> None:
    engine = db.create_engine("sqlite:////nonexistent-dir/for/sure/bridge.db")
    secrets = SecretCache(lambda: engine, lambda: TokenBox(MultiFernet([Fernet(Fernet.generate_key())])))
    receiver = WebhookReceiver(engine, [], clock=lambda: float(NOW), on_stored=wakeups, company_secrets=secrets)
    try:
        async with client_for(receiver) as client:
            response = await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
    finally:
        await engine.dispose()
    # Not the sender's fault: Whop is told to come back, and nothing is counted as a rejection.
    assert (response.status_code, response.json()) == (503, {"error": "store unavailable"})
    assert response.headers["retry-after"] == "5"
    assert (outcomes["store_error"], outcomes["rejected"], wakeups.count) == (1, 0, 0)


async def test_store_going_away_answers_503(engine: AsyncEngine, client: httpx.AsyncClient) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(tables.webhook_inbox.drop)
    response = await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
    assert response.status_code == 503


async def test_one_statement_per_delivery(engine: AsyncEngine, client: httpx.AsyncClient) -> None:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
        await client.post("/webhooks/whop", content=FIXTURE_BODY, headers=FIXTURE_HEADERS)
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert len(statements) == 2 and all(s.lstrip().upper().startswith("INSERT") for s in statements)


# Property: random traffic never breaks the endpoint and never gets a forgery in -------------------

HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
)
GOOD_IDS = st.from_regex(r"msg_[A-Za-z0-9]{6,24}", fullmatch=True)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "account_id", "data", "company_id", "company", "id"]) | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=15,
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[dict[str, bytes], bytes, bool]:
    """(headers, body, genuine): genuine means signed with the real secret, fresh, well-formed."""
    body = draw(st.binary(max_size=300) | JSON_VALUES.map(lambda v: json.dumps(v).encode()) | st.just(FIXTURE_BODY))
    msg_id = draw(GOOD_IDS | HEADER_TEXT)
    skew = draw(st.sampled_from([0, 0, 0, 1, -1, 299, -300]) | st.integers(-(10**6), 10**6))
    timestamp = draw(st.just(str(NOW + skew)) | HEADER_TEXT)
    how = draw(st.sampled_from(["real", "real-among-junk", "other-secret", "other-body", "junk", "none"]))
    real = signature(body, msg_id=msg_id, timestamp=timestamp)
    if how == "real":
        sig = real
    elif how == "real-among-junk":
        sig = f"{draw(HEADER_TEXT).replace(' ', '')} {real} v1,AAAA"
    elif how == "other-secret":
        sig = signature(body, msg_id=msg_id, timestamp=timestamp, secret=OTHER_SECRET)
    elif how == "other-body":
        sig = signature(body + b" ", msg_id=msg_id, timestamp=timestamp)
    elif how == "junk":
        sig = draw(HEADER_TEXT)
    headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp}
    if how != "none":
        headers["webhook-signature"] = sig
    for name in draw(st.sets(st.sampled_from(sorted(headers)), max_size=1)):
        del headers[name]  # sometimes a header goes missing
    genuine = (
        how in ("real", "real-among-junk") and len(headers) == 3 and timestamp == str(NOW + skew) and abs(skew) <= 300
    )
    return {k: v.encode("latin-1") for k, v in headers.items()}, body, genuine


@pytest.fixture
def accepted_so_far() -> dict[str, bytes]:
    return {}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(delivery=deliveries())
async def test_random_traffic_never_5xx_and_never_accepts_a_forgery(
    delivery: tuple[dict[str, bytes], bytes, bool],
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    accepted_so_far: dict[str, bytes],
) -> None:
    headers, body, genuine = delivery
    response = await client.post("/webhooks/whop", content=body, headers=headers)
    event(f"HTTP {response.status_code}, genuine={genuine}")  # shown by --hypothesis-show-statistics
    assert response.status_code < 500
    if response.status_code == 200:
        assert genuine, "a delivery without a valid, fresh signature was accepted"
        msg_id = headers["webhook-id"].decode("latin-1")
        expected = "duplicate" if msg_id in accepted_so_far else "accepted"
        assert response.json() == {"status": expected}
        accepted_so_far.setdefault(msg_id, body)
        stored_event = await inbox.get_event(engine, msg_id)
        assert stored_event is not None
        if b"\x00" not in body and body.decode("utf-8", "replace").encode() == body:
            assert stored_event.body.encode() == accepted_so_far[msg_id]  # the first delivery's bytes
    else:
        assert response.status_code == 401
        if genuine:
            # Only a malformed id may turn a genuine signature away.
            msg_id = headers["webhook-id"].decode("latin-1")
            assert not (msg_id.isascii() and msg_id.isprintable() and " " not in msg_id and msg_id)
    stored = await inbox.counts(engine)
    assert stored["pending"] == len(accepted_so_far)


async def test_concurrent_deliveries_are_each_stored_once_in_shared_commits(
    client: httpx.AsyncClient, engine: AsyncEngine, receiver: WebhookReceiver
) -> None:
    """Many deliveries at once (some repeated, as Whop retries) go through the group commit."""
    bodies = [envelope(type="membership.updated", account_id="biz_group", data={"id": f"mem_{i}"}) for i in range(60)]
    requests = [(body, signed(body, msg_id=f"msg_group_{i}")) for i, body in enumerate(bodies)]
    requests += requests[:10]  # ten retries racing their originals

    answers = await asyncio.gather(
        *(client.post("/webhooks/whop", content=body, headers=headers) for body, headers in requests)
    )

    assert {a.status_code for a in answers} == {200}
    statuses = [a.json()["status"] for a in answers]
    assert statuses.count("accepted") == 60 and statuses.count("duplicate") == 10
    assert sorted(r["webhook_id"] for r in await rows(engine)) == sorted(f"msg_group_{i}" for i in range(60))
