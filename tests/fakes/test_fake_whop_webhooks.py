"""The fake Whop's company webhooks behave as the fact sheet (§4) and PY26's webhook types say."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fakes.whop import NATIVE_VERSION, FakeWhop, SeededCompany, seed_company
from fakes.whop._util import iso
from tests import loopback
from tests.fakes.test_fake_whop import REDIRECT, Clock, connect

NATIVE = {"Api-Version-Date": NATIVE_VERSION}
DAY = 86_400
EVENTS = ["membership.activated", "membership.deactivated"]
MANAGE = "developer:manage_webhook"

# Field sets of PY26 `whop_sdk/types/webhook.py`, `webhook_list_item.py`, `webhook_delivery.py`.
WEBHOOK_FIELDS = {
    "api_version", "api_version_date", "child_resource_events", "consecutive_failures", "created_at",
    "disabled_at", "disabled_reason", "enabled", "events", "failing_since", "id", "last_failure_at",
    "resource_id", "testable_events", "url", "webhook_secret",
}  # fmt: skip
LIST_ITEM_FIELDS = WEBHOOK_FIELDS - {"testable_events"}
DELIVERY_FIELDS = {
    "event", "id", "replayed_from", "request_body", "resource_id", "response_body", "response_code",
    "sent_at", "success", "total_time",
}  # fmt: skip


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    """What a bridge does (§7.4): HMAC over `id.timestamp.body` keyed with the secret's raw bytes."""
    webhook_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > 300:
        return False
    digest = hmac.new(secret.encode(), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    return any(hmac.compare_digest(expected, entry) for entry in headers.get("webhook-signature", "").split())


@dataclass
class Received:
    name: str
    body: bytes
    headers: dict[str, str]
    verified: bool

    @property
    def envelope(self) -> dict[str, Any]:
        envelope: dict[str, Any] = json.loads(self.body)
        return envelope


class Receiver:
    """A bridge-like endpoint per name (`/hooks/{name}`), each verified with its webhook's secret."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.secrets: dict[str, str] = {}
        self.received: list[Received] = []
        self.status = 200  # what a verified delivery is answered with
        self.delay = 0.0
        self.app = Starlette(routes=[Route("/hooks/{name}", self._hook, methods=["POST"])])

    @staticmethod
    def url(name: str) -> str:
        return f"http://bridge.test/hooks/{name}"

    def of(self, name: str) -> list[Received]:
        return [r for r in self.received if r.name == name]

    async def _hook(self, request: Request) -> Response:
        name, body = request.path_params["name"], await request.body()
        verified = verify(self.secrets.get(name, ""), request.headers, body, self.clock())
        self.received.append(Received(name, body, dict(request.headers), verified))
        if self.delay:
            await anyio.sleep(self.delay)
        if not verified:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if self.status >= 300:
            return PlainTextResponse("upstream exploded", status_code=self.status)
        return JSONResponse({"ok": True}, status_code=self.status)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeWhop:
    return FakeWhop(clock=clock, redirect_uris=[REDIRECT])


@pytest.fixture
def alpha(fake: FakeWhop) -> SeededCompany:
    """Owned by the consent user; its first seed also adds a neighbor owned by someone else."""
    return seed_company(fake, company_id="biz_alpha", members=4, memberships=4, products=1)


@pytest.fixture
def beta(fake: FakeWhop, alpha: SeededCompany) -> SeededCompany:
    """A second company of the same owner."""
    return seed_company(fake, company_id="biz_beta", title="Beta Desk", members=3, memberships=3, products=1, seed=2)


@pytest.fixture
def rival(alpha: SeededCompany) -> SeededCompany:
    assert alpha.neighbor is not None
    return alpha.neighbor


@pytest.fixture
async def receiver(fake: FakeWhop, clock: Clock) -> AsyncIterator[Receiver]:
    receiver = Receiver(clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver.app)) as client:
        fake.webhook_client = client
        yield receiver


@pytest.fixture
async def api(fake: FakeWhop) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="http://whop.test") as client:
        yield client


def at(seconds: float) -> str | None:
    """A moment of the test clock as Whop writes it."""
    return iso(round(seconds * 1000))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **NATIVE}


async def create(
    api: httpx.AsyncClient, token: str, receiver: Receiver, name: str, events: list[str] = EVENTS, **extra: Any
) -> dict[str, Any]:
    """POST /webhooks to the receiver's `name` endpoint; the receiver keeps the secret it returns."""
    body = {"url": receiver.url(name), "events": events, "api_version_date": NATIVE_VERSION, **extra}
    response = await api.post("/api/v1/webhooks", json=body, headers=bearer(token))
    assert response.status_code == 200, response.text
    hook: dict[str, Any] = response.json()
    receiver.secrets[name] = hook["webhook_secret"]
    return hook


def assert_error(response: httpx.Response, status: int, type_: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == type_ and isinstance(error["message"], str) and error["message"]


# ---- endpoints ----------------------------------------------------------------------------------


async def test_create_returns_the_secret_once_and_every_read_hides_it(
    api: httpx.AsyncClient, alpha: SeededCompany, receiver: Receiver, clock: Clock
) -> None:
    hook = await create(api, alpha.api_key, receiver, "a")
    assert set(hook) == WEBHOOK_FIELDS
    assert hook["id"].startswith("hook_") and hook["webhook_secret"].startswith("ws_")
    assert hook["resource_id"] == alpha.company_id and hook["url"] == receiver.url("a")
    assert hook["events"] == EVENTS and hook["testable_events"] == EVENTS
    assert hook["enabled"] is True and hook["api_version"] == "v1" and hook["api_version_date"] == NATIVE_VERSION
    assert hook["created_at"] == at(clock.now)
    assert hook["consecutive_failures"] == 0
    assert hook["failing_since"] is hook["last_failure_at"] is hook["disabled_at"] is hook["disabled_reason"] is None

    read = (await api.get(f"/api/v1/webhooks/{hook['id']}", headers=bearer(alpha.api_key))).json()
    assert read == {**hook, "webhook_secret": None}
    listed = (await api.get("/api/v1/webhooks", headers=bearer(alpha.api_key))).json()["data"]
    assert [set(item) for item in listed] == [LIST_ITEM_FIELDS]
    assert listed[0]["webhook_secret"] is None and listed[0]["id"] == hook["id"]
    updated = await api.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=bearer(alpha.api_key))
    assert updated.json()["webhook_secret"] is None


async def test_unpinned_create_is_legacy_and_bad_input_is_400(api: httpx.AsyncClient, alpha: SeededCompany) -> None:
    key = bearer(alpha.api_key)
    plain = await api.post("/api/v1/webhooks", json={"url": "https://bridge.example/h", "events": EVENTS}, headers=key)
    assert plain.status_code == 200 and plain.json()["api_version_date"] is None  # unpinned: legacy payloads
    bad = [
        {"events": EVENTS},  # no url
        {"url": "ftp://bridge.example/h", "events": EVENTS},
        {"url": "https://bridge.example/h", "events": ["membership_activated"]},  # not Whop's dot form
        {"url": "https://bridge.example/h", "events": "membership.activated"},
        {"url": "https://bridge.example/h", "events": EVENTS, "api_version_date": "2026-01-01"},
        {"url": "https://bridge.example/h", "events": EVENTS, "enabled": "yes"},
    ]
    for body in bad:
        response = await api.post("/api/v1/webhooks", json=body, headers=key)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] in ("bad_request", "invalid_api_version")


async def test_list_pages_newest_first_and_follows_cursors(
    api: httpx.AsyncClient, alpha: SeededCompany, receiver: Receiver, clock: Clock
) -> None:
    ids = []
    for name in "abcde":
        ids.append((await create(api, alpha.api_key, receiver, name))["id"])
        clock.advance(1)
    newest_first = ids[::-1]
    seen: list[str] = []
    after: str | None = None
    while True:
        params = {"account_id": alpha.company_id, "first": "2", **({"after": after} if after else {})}
        page = (await api.get("/api/v1/webhooks", params=params, headers=bearer(alpha.api_key))).json()
        seen += [h["id"] for h in page["data"]]
        if not page["page_info"]["has_next_page"]:
            break
        after = page["page_info"]["end_cursor"]
    assert seen == newest_first
    last_two = (await api.get("/api/v1/webhooks", params={"last": "2"}, headers=bearer(alpha.api_key))).json()
    assert [h["id"] for h in last_two["data"]] == newest_first[-2:]
    assert last_two["page_info"]["has_previous_page"] and not last_two["page_info"]["has_next_page"]


async def test_update_and_delete(api: httpx.AsyncClient, alpha: SeededCompany, receiver: Receiver) -> None:
    key = bearer(alpha.api_key)
    hook = await create(api, alpha.api_key, receiver, "a")
    path = f"/api/v1/webhooks/{hook['id']}"
    changes = {"url": receiver.url("b"), "events": ["payment.succeeded"], "enabled": False, "api_version_date": None}
    patched = (await api.patch(path, json=changes, headers=key)).json()
    assert patched["url"] == receiver.url("b") and patched["events"] == ["payment.succeeded"]
    assert patched["enabled"] is False and patched["api_version_date"] is None
    assert patched["disabled_at"] is None and patched["disabled_reason"] is None  # disabled by its owner, not Whop
    assert_error(await api.patch(path, json={"events": ["nope.nope"]}, headers=key), 400, "bad_request")
    assert (await api.get(path, headers=key)).json()["events"] == ["payment.succeeded"]  # a bad PATCH changes nothing

    deleted = await api.delete(path, headers=key)
    assert deleted.status_code == 200 and deleted.json() == {"id": hook["id"], "deleted": True}
    assert_error(await api.get(path, headers=key), 404, "not_found")
    assert_error(await api.delete(path, headers=key), 404, "not_found")


# ---- permission and isolation ----------------------------------------------------------------------


async def test_manage_webhook_permission_for_oauth_grants_and_api_keys(
    api: httpx.AsyncClient, fake: FakeWhop, alpha: SeededCompany, receiver: Receiver
) -> None:
    body = {"url": receiver.url("a"), "events": EVENTS, "resource_id": alpha.company_id}
    hook = await create(api, alpha.api_key, receiver, "a")
    without = (await connect(api, scope="openid member:basic:read", company_id=alpha.company_id))["access_token"]
    for response in (
        await api.post("/api/v1/webhooks", json=body, headers=bearer(without)),
        await api.get("/api/v1/webhooks", headers=bearer(without)),
        await api.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": False}, headers=bearer(without)),
        await api.delete(f"/api/v1/webhooks/{hook['id']}", headers=bearer(without)),
    ):
        assert_error(response, 403, "forbidden")
        assert MANAGE in response.json()["error"]["message"]
    granted = (await connect(api, scope=f"openid {MANAGE}", company_id=alpha.company_id))["access_token"]
    made = await api.post("/api/v1/webhooks", json=body, headers=bearer(granted))
    assert made.status_code == 200 and made.json()["webhook_secret"].startswith("ws_")

    # API keys have it unless the company's key is denied it; the switch can be undone.
    fake.deny_key_permission(alpha.company_id)
    assert_error(await api.post("/api/v1/webhooks", json=body, headers=bearer(alpha.api_key)), 403, "forbidden")
    assert (await api.get("/api/v1/members", headers=bearer(alpha.api_key))).status_code == 200  # only that one
    fake.allow_key_permission(alpha.company_id)
    assert (await api.post("/api/v1/webhooks", json=body, headers=bearer(alpha.api_key))).status_code == 200
    # The switch works for read permissions too.
    fake.deny_key_permission(alpha.company_id, "member:basic:read")
    assert_error(await api.get("/api/v1/members", headers=bearer(alpha.api_key)), 403, "forbidden")


async def test_companies_cannot_see_or_touch_each_others_webhooks(
    api: httpx.AsyncClient,
    fake: FakeWhop,
    alpha: SeededCompany,
    beta: SeededCompany,
    rival: SeededCompany,
    receiver: Receiver,
) -> None:
    mine = await create(api, alpha.api_key, receiver, "alpha")
    theirs = await create(api, rival.api_key, receiver, "rival")
    betas = await create(api, beta.api_key, receiver, "beta")
    alpha_scoped = (await connect(api, scope=f"openid {MANAGE}", company_id=alpha.company_id))["access_token"]
    user_wide = (await connect(api, scope=f"openid {MANAGE}"))["access_token"]  # both of the owner's companies

    for token, foreign in ((alpha.api_key, theirs), (alpha.api_key, betas), (alpha_scoped, betas), (user_wide, theirs)):
        hook_path = f"/api/v1/webhooks/{foreign['id']}"
        for response in (
            await api.get(hook_path, headers=bearer(token)),
            await api.patch(hook_path, json={"url": receiver.url("stolen")}, headers=bearer(token)),
            await api.delete(hook_path, headers=bearer(token)),
            await api.get(f"{hook_path}/deliveries", headers=bearer(token)),
            await api.post(f"{hook_path}/replay", json={"sent_after": iso(0)}, headers=bearer(token)),
            await api.post(f"{hook_path}/test", json={"event": EVENTS[0]}, headers=bearer(token)),
            await api.get("/api/v1/webhooks", params={"account_id": foreign["resource_id"]}, headers=bearer(token)),
            await api.post(
                "/api/v1/webhooks",
                json={"url": receiver.url("x"), "events": EVENTS, "resource_id": foreign["resource_id"]},
                headers=bearer(token),
            ),
        ):
            assert_error(response, 403, "forbidden")
    assert_error(await api.get("/api/v1/webhooks/hook_unknown", headers=bearer(alpha.api_key)), 404, "not_found")

    own = (await api.get("/api/v1/webhooks", headers=bearer(alpha.api_key))).json()["data"]
    assert [h["id"] for h in own] == [mine["id"]]
    # A user token reaches each of the user's companies, but a list needs to name one.
    assert_error(await api.get("/api/v1/webhooks", headers=bearer(user_wide)), 400, "bad_request")
    for company, hook in ((alpha, mine), (beta, betas)):
        listed = await api.get("/api/v1/webhooks", params={"account_id": company.company_id}, headers=bearer(user_wide))
        assert [h["id"] for h in listed.json()["data"]] == [hook["id"]]
    assert fake.webhook(theirs["id"]).url == receiver.url("rival")  # nothing was changed or deleted

    # An event of one company reaches only that company's webhooks.
    await fake.emit(alpha.company_id, "membership.activated", alpha.membership_ids[0])
    assert [r.name for r in receiver.received] == ["alpha"]
    with pytest.raises(ValueError, match="belongs to"):
        await fake.emit(alpha.company_id, "membership.activated", rival.membership_ids[0])


# ---- emission ----------------------------------------------------------------------------------------


async def test_emit_signs_each_webhook_with_its_own_secret(
    api: httpx.AsyncClient, fake: FakeWhop, alpha: SeededCompany, receiver: Receiver, clock: Clock
) -> None:
    native = await create(api, alpha.api_key, receiver, "native")
    legacy = await create(api, alpha.api_key, receiver, "legacy", api_version_date=None)
    await create(api, alpha.api_key, receiver, "payments", events=["payment.succeeded"])
    assert native["webhook_secret"] != legacy["webhook_secret"]
    mem_id = alpha.membership_ids[0]

    sent = await fake.emit(alpha.company_id, "membership.activated", mem_id)
    assert [d.hook_id for d in sent] == [native["id"], legacy["id"]]  # not the payments-only webhook
    assert all(d.success and d.response_code == 200 for d in sent)
    first, second = receiver.received
    assert first.verified and second.verified
    # Each delivery verifies only with its own webhook's secret.
    assert not verify(legacy["webhook_secret"], first.headers, first.body, clock.now)
    # One message: the same webhook-id for every webhook, equal to the envelope's id.
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == first.envelope["id"] == sent[0].message_id
    assert first.headers["webhook-id"].startswith("msg_") and first.headers["webhook-timestamp"] == str(int(clock.now))
    assert first.headers["content-type"] == "application/json"
    assert first.envelope["type"] == "membership.activated" and first.envelope["data"]["id"] == mem_id
    assert first.envelope["account_id"] == alpha.company_id and first.envelope["api_version_date"] == NATIVE_VERSION
    assert second.envelope["company_id"] == alpha.company_id and "account_id" not in second.envelope  # legacy family
    rendered = fake.event("membership.activated", mem_id, webhook_id=sent[0].message_id, timestamp=clock.now)
    assert first.envelope == rendered  # the object as stored, rendered like a REST read

    assert await fake.emit(alpha.company_id, "member.created", alpha.member_ids[0]) == []  # nobody subscribed
    log = (await api.get(f"/api/v1/webhooks/{native['id']}/deliveries", headers=bearer(alpha.api_key))).json()
    (entry,) = log["data"]
    assert set(entry) == DELIVERY_FIELDS
    assert entry["id"].startswith("whdel_") and entry["event"] == "membership.activated"
    assert entry["request_body"] == first.envelope and entry["response_body"] == {"ok": True}
    assert entry["response_code"] == 200 and entry["success"] is True and entry["replayed_from"] is None
    assert entry["sent_at"] == at(clock.now) and entry["resource_id"] == alpha.company_id


async def test_emit_reaches_a_receiver_on_loopback_and_the_control_endpoint_emits(
    fake: FakeWhop, alpha: SeededCompany, clock: Clock
) -> None:
    receiver = Receiver(clock)
    with loopback.serve(receiver.app) as base, fake.serve() as whop:
        hook = fake.add_webhook(alpha.company_id, f"{base}/hooks/lo", ["membership.deactivated"])
        receiver.secrets["lo"] = hook.secret
        (delivery,) = await fake.emit(alpha.company_id, "membership.deactivated", alpha.membership_ids[1])
        async with httpx.AsyncClient(base_url=whop) as control:
            order = {"company_id": alpha.company_id, "type": "membership.deactivated"}
            emitted = await control.post("/_fake/emit", json={**order, "object_id": alpha.membership_ids[2]})
    assert delivery.success and emitted.status_code == 200
    (remote,) = emitted.json()["deliveries"]
    assert remote["webhook_id"] == hook.id and remote["success"] is True
    assert [r.verified for r in receiver.received] == [True, True]
    assert [r.envelope["data"]["id"] for r in receiver.received] == alpha.membership_ids[1:3]


# ---- failures and health ---------------------------------------------------------------------------


async def test_failures_update_health_and_a_success_resets_it(
    api: httpx.AsyncClient, fake: FakeWhop, alpha: SeededCompany, receiver: Receiver, clock: Clock
) -> None:
    hook = await create(api, alpha.api_key, receiver, "a")
    path = f"/api/v1/webhooks/{hook['id']}"
    receiver.status = 500
    start = clock.now
    (failed,) = await fake.emit(alpha.company_id, "membership.activated", alpha.membership_ids[0])
    assert failed.response_code == 500 and not failed.success
    assert failed.response_body == {"error": "response is not a JSON object", "raw_body": "upstream exploded"}
    health = (await api.get(path, headers=bearer(alpha.api_key))).json()
    assert health["consecutive_failures"] == 1 and health["failing_since"] == at(start)
    assert health["last_failure_at"] is None and health["enabled"] is True  # retries are still due
    failing = await api.get("/api/v1/webhooks", params={"has_failures": "true"}, headers=bearer(alpha.api_key))
    assert [h["id"] for h in failing.json()["data"]] == [hook["id"]]

    # Whop retries 10/20/40 s later, with the same webhook-id; retries do not add to the streak count.
    assert await fake.run_webhook_retries() == []  # nothing is due yet
    clock.advance(10)
    (retry,) = await fake.run_webhook_retries()
    assert retry.attempt == "retry" and retry.message_id == failed.message_id and retry.body == failed.body
    rest = await fake.run_webhook_retries(until_done=True)
    assert len(rest) == 2 and all(not d.success for d in rest)
    assert {r.headers["webhook-id"] for r in receiver.received} == {failed.message_id}
    assert len(receiver.received) == 4
    health = (await api.get(path, headers=bearer(alpha.api_key))).json()
    assert health["consecutive_failures"] == 1 and health["last_failure_at"] == at(clock.now)

    clock.advance(60)
    await fake.emit(alpha.company_id, "membership.activated", alpha.membership_ids[1])
    assert fake.webhook(hook["id"]).consecutive_failures == 2
    receiver.status = 200
    await fake.emit(alpha.company_id, "membership.activated", alpha.membership_ids[2])
    health = (await api.get(path, headers=bearer(alpha.api_key))).json()
    assert health["consecutive_failures"] == 0 and health["failing_since"] is None
    assert health["last_failure_at"] is not None  # history, not a current failure


async def test_refused_connections_and_timeouts_are_failures_with_status_0(
    fake: FakeWhop, alpha: SeededCompany, receiver: Receiver
) -> None:
    fake.hooks.retry_delays = ()  # every failure is final at once
    refused = fake.add_webhook(alpha.company_id, f"http://127.0.0.1:{loopback.free_port()}/hooks/x", EVENTS)
    async with httpx.AsyncClient() as real_network:
        (delivery,) = await fake.emit(alpha.company_id, "membership.activated", client=real_network)
    assert delivery.response_code == 0 and not delivery.success and delivery.error
    assert delivery.response_body is None and delivery.response_text == ""
    assert fake.webhook(refused.id).last_failure_at is not None
    fake.hooks.delete(refused.id)

    slow = fake.add_webhook(alpha.company_id, receiver.url("slow"), EVENTS)
    receiver.secrets["slow"] = slow.secret
    receiver.delay, fake.hooks.timeout = 1.0, 0.05
    (timed_out,) = await fake.emit(alpha.company_id, "membership.activated")
    assert timed_out.response_code == 0 and timed_out.error is not None and "timeout" in timed_out.error
    assert fake.webhook(slow.id).consecutive_failures == 1


async def test_three_days_of_failures_disable_the_webhook_until_it_is_re_enabled(
    api: httpx.AsyncClient, fake: FakeWhop, alpha: SeededCompany, receiver: Receiver, clock: Clock
) -> None:
    fake.hooks.retry_delays = ()
    hook = await create(api, alpha.api_key, receiver, "a")
    path = f"/api/v1/webhooks/{hook['id']}"
    receiver.status = 503
    await fake.emit(alpha.company_id, "membership.activated")
    clock.advance(3 * DAY - 1)
    await fake.emit(alpha.company_id, "membership.activated")
    assert fake.webhook(hook["id"]).enabled  # not yet three days
    clock.advance(1)
    await fake.emit(alpha.company_id, "membership.activated")
    disabled = (await api.get(path, headers=bearer(alpha.api_key))).json()
    assert disabled["enabled"] is False and disabled["disabled_reason"] == "delivery_failures"
    assert disabled["disabled_at"] == at(clock.now) and disabled["consecutive_failures"] == 3
    assert await fake.emit(alpha.company_id, "membership.activated") == []  # a disabled webhook gets nothing
    assert len(receiver.received) == 3

    enabled = (await api.patch(path, json={"enabled": True}, headers=bearer(alpha.api_key))).json()
    assert enabled["enabled"] is True and enabled["consecutive_failures"] == 0
    assert enabled["failing_since"] is enabled["disabled_at"] is enabled["disabled_reason"] is None


# ---- replay ------------------------------------------------------------------------------------------


async def test_replay_resends_only_failed_messages_after_sent_after_with_their_webhook_id(
    api: httpx.AsyncClient, fake: FakeWhop, alpha: SeededCompany, receiver: Receiver, clock: Clock
) -> None:
    fake.hooks.retry_delays = ()
    hook = await create(api, alpha.api_key, receiver, "a")
    mems = alpha.membership_ids
    await fake.emit(alpha.company_id, "membership.activated", mems[0])  # delivered, before the window
    clock.advance(600)
    outage_began = clock.now
    receiver.status = 500  # the bridge is down
    missed = [await fake.emit(alpha.company_id, "membership.activated", m) for m in mems[1:3]]
    clock.advance(60)
    receiver.status = 200
    await fake.emit(alpha.company_id, "membership.deactivated", mems[3])  # delivered, inside the window
    # The secret changed since: replays are signed with the current one.
    receiver.secrets["a"] = fake.hooks.rotate_secret(hook["id"])
    receiver.received.clear()
    clock.advance(3600)

    body = {"sent_after": at(outage_began - 1), "failed_only": True}
    response = await api.post(f"/api/v1/webhooks/{hook['id']}/replay", json=body, headers=bearer(alpha.api_key))
    assert response.status_code == 200 and response.json() == {"queued": True}
    originals = [d for (d,) in missed]
    assert [r.headers["webhook-id"] for r in receiver.received] == [d.message_id for d in originals]
    assert [r.body for r in receiver.received] == [d.body for d in originals]  # byte for byte
    assert all(r.verified for r in receiver.received)  # fresh timestamp, current secret
    assert {r.headers["webhook-timestamp"] for r in receiver.received} == {str(int(clock.now))}

    log = (await api.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=bearer(alpha.api_key))).json()["data"]
    assert [d["replayed_from"] for d in log[:2]] == [originals[1].id, originals[0].id]  # newest first
    assert all(d["success"] for d in log[:2]) and len(log) == 6
    assert fake.webhook(hook["id"]).consecutive_failures == 0


async def test_replay_filters_by_event_and_window_and_can_regenerate_ids(
    fake: FakeWhop, alpha: SeededCompany, receiver: Receiver, clock: Clock
) -> None:
    hook = fake.add_webhook(alpha.company_id, receiver.url("a"), EVENTS)
    receiver.secrets["a"] = hook.secret
    t0 = clock.now
    (activated,) = await fake.emit(alpha.company_id, "membership.activated", alpha.membership_ids[0])
    clock.advance(100)
    (deactivated,) = await fake.emit(alpha.company_id, "membership.deactivated", alpha.membership_ids[0])
    clock.advance(100)
    receiver.received.clear()

    only = await fake.hooks.replay(hook.id, sent_after=t0 - 1, events=["membership.deactivated"])
    assert [d.message_id for d in only] == [deactivated.message_id]
    early = await fake.hooks.replay(hook.id, sent_after=t0 - 1, sent_before=t0 + 50)
    assert [d.message_id for d in early] == [activated.message_id]
    (renamed,) = await fake.hooks.replay(hook.id, sent_after=t0 + 50, sent_before=t0 + 150, regenerate_ids=True)
    assert renamed.message_id != deactivated.message_id and renamed.envelope["id"] == renamed.message_id
    assert renamed.envelope["data"] == deactivated.envelope["data"] and renamed.replayed_from == deactivated.id
    assert receiver.received[-1].headers["webhook-id"] == renamed.message_id
    assert [r.verified for r in receiver.received] == [True, True, True]
    # Replays are deliveries too: a window over them re-sends each message once, from its latest attempt.
    again = await fake.hooks.replay(hook.id, sent_after=t0 + 150)
    messages = {activated.message_id, deactivated.message_id, renamed.message_id}
    assert sorted(d.message_id for d in again) == sorted(messages)
    assert {d.replayed_from for d in again} == {d.id for d in [*only, *early, renamed]}


async def test_replay_of_one_delivery_keeps_its_webhook_id(
    api: httpx.AsyncClient, fake: FakeWhop, alpha: SeededCompany, receiver: Receiver
) -> None:
    hook = await create(api, alpha.api_key, receiver, "a")
    (original,) = await fake.emit(alpha.company_id, "membership.activated", alpha.membership_ids[0])
    path = f"/api/v1/webhooks/{hook['id']}/deliveries/{original.id}/replay"
    response = await api.post(path, headers=bearer(alpha.api_key))
    assert response.json() == {"body": '{"ok":true}', "status": 200, "success": True}
    assert [r.headers["webhook-id"] for r in receiver.received] == [original.message_id] * 2
    renamed = await api.post(path, json={"regenerate_id": True}, headers=bearer(alpha.api_key))
    assert renamed.json()["success"] and receiver.received[-1].headers["webhook-id"] != original.message_id
    missing = f"/api/v1/webhooks/{hook['id']}/deliveries/whdel_nope/replay"
    assert_error(await api.post(missing, headers=bearer(alpha.api_key)), 404, "not_found")


async def test_disabled_webhooks_and_windows_outside_30_days_refuse_replay(
    api: httpx.AsyncClient, fake: FakeWhop, alpha: SeededCompany, receiver: Receiver, clock: Clock
) -> None:
    hook = await create(api, alpha.api_key, receiver, "a")
    (original,) = await fake.emit(alpha.company_id, "membership.activated", alpha.membership_ids[0])
    replay = f"/api/v1/webhooks/{hook['id']}/replay"
    one = f"/api/v1/webhooks/{hook['id']}/deliveries/{original.id}/replay"
    key = bearer(alpha.api_key)

    assert_error(await api.post(replay, json={}, headers=key), 400, "bad_request")  # sent_after is required
    assert_error(await api.post(replay, json={"sent_after": "yesterday"}, headers=key), 400, "bad_request")
    old = {"sent_after": at(clock.now - 40 * DAY), "sent_before": at(clock.now - 31 * DAY)}
    assert_error(await api.post(replay, json=old, headers=key), 400, "bad_request")

    fake.disable_webhook(hook["id"])
    assert fake.webhook(hook["id"]).disabled_reason == "delivery_failures"
    assert_error(await api.post(replay, json={"sent_after": iso(0)}, headers=key), 409, "conflict")
    assert_error(await api.post(one, headers=key), 409, "conflict")
    assert len(receiver.received) == 1

    # Re-enabled, but 31 days later the delivery is no longer kept.
    await api.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=key)
    clock.advance(31 * DAY)
    assert (await api.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=key)).json()["data"] == []
    assert_error(await api.post(one, headers=key), 404, "not_found")
    assert (await api.post(replay, json={"sent_after": iso(0)}, headers=key)).json() == {"queued": True}
    assert len(receiver.received) == 1  # the 30-day clamp left nothing to replay


# ---- delete and test ---------------------------------------------------------------------------------


async def test_deleted_webhooks_receive_nothing(
    api: httpx.AsyncClient, fake: FakeWhop, alpha: SeededCompany, receiver: Receiver
) -> None:
    kept = await create(api, alpha.api_key, receiver, "kept")
    gone = await create(api, alpha.api_key, receiver, "gone")
    await api.delete(f"/api/v1/webhooks/{gone['id']}", headers=bearer(alpha.api_key))
    sent = await fake.emit(alpha.company_id, "membership.activated", alpha.membership_ids[0])
    assert [d.hook_id for d in sent] == [kept["id"]] and [r.name for r in receiver.received] == ["kept"]
    assert [h.id for h in fake.webhooks_of(alpha.company_id)] == [kept["id"]]


async def test_test_endpoint_sends_a_signed_sample_that_is_not_logged(
    api: httpx.AsyncClient, fake: FakeWhop, alpha: SeededCompany, receiver: Receiver
) -> None:
    hook = await create(api, alpha.api_key, receiver, "a")
    path = f"/api/v1/webhooks/{hook['id']}/test"
    response = await api.post(path, json={"event": "membership.deactivated"}, headers=bearer(alpha.api_key))
    assert response.json() == {"body": {"ok": True}, "status": 200, "success": True}
    (sample,) = receiver.received
    assert sample.verified and sample.envelope["type"] == "membership.deactivated" and sample.envelope["data"] is None
    assert fake.webhook_deliveries(hook["id"]) == []
    wrong = await api.post(path, json={"event": "payment.succeeded"}, headers=bearer(alpha.api_key))
    assert_error(wrong, 400, "bad_request")
