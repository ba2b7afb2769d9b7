"""The admin page: API-key mode, needs-reconnect, provisioning, jobs with live progress, the next
step as the primary button, recent webhook deliveries (rejected ones too), error pages."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import services
from bridge.config import Settings, load_settings
from bridge.crypto import TokenBox
from bridge.runtime import Runtime, Transports
from bridge.store import connections
from bridge.store import runs as run_store
from bridge.sync.engine import SyncResult
from bridge.web.app import create_app
from fakes.whop import OWNER_NAME, FakeWhop
from tests.conftest import open_store
from tests.web.conftest import (
    BRIDGE_URL,
    COMPANY_ID,
    COMPANY_TITLE,
    PASSWORD,
    TWENTY_KEY,
    TWENTY_URL,
    WHOP_URL,
    connect_flow,
    login,
    page_csrf,
)


async def post(client: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    return await client.post(path, data={"csrf_token": await page_csrf(client), **data})


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await login(client)
    return client


async def connected(engine: AsyncEngine, settings: Settings) -> None:
    """A company connected by OAuth, as Connect Whop leaves it, without running its first job."""
    await connections.upsert_connection(
        engine,
        TokenBox(settings.fernet),
        company_id=COMPANY_ID,
        company_title=COMPANY_TITLE,
        mode="oauth",
        access_token="access-token-0123",
        refresh_token="refresh-token-0123",
        expires_at=None,
        scopes="openid",
        whop_user_id="user_owner",
    )


def button(page: str, button_id: str) -> str:
    """The opening tag of the button with this id."""
    found = re.search(rf'<button type="submit" id="{button_id}"[^>]*>', page)
    assert found, f"no button #{button_id}"
    return found.group(0)


async def test_api_key_mode_works_headless_and_is_shown(
    tmp_path: Path, secret_key: str, fake_whop: FakeWhop, transports: Transports
) -> None:
    settings = load_settings(
        TWENTY_URL=TWENTY_URL,
        TWENTY_API_KEY=TWENTY_KEY,
        DATABASE_URL=f"sqlite:///{tmp_path}/k.db",
        BRIDGE_PUBLIC_URL=BRIDGE_URL,
        BRIDGE_ADMIN_PASSWORD=PASSWORD,
        BRIDGE_SECRET_KEY=secret_key,
        WHOP_API_KEY=fake_whop.api_key_for(COMPANY_ID),
        WHOP_API_URL=WHOP_URL,
        TWENTY_REQUESTS_PER_MINUTE=100_000,
    )
    engine = await open_store(settings)
    try:
        app = create_app(Runtime(settings, transports=transports, store=engine), background=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as c:
            await login(c)
            page = (await c.get("/")).text
            assert "API key mode" in page and "Connect Whop needs <code>WHOP_CLIENT_ID</code>" in page
            await post(c, "/provision")
            await post(c, "/sync", kind="full")
            page = (await c.get("/")).text
            assert "API key mode" in page and COMPANY_TITLE in page
            assert "People: 10 created" in page
            assert "whop-test-key" not in page
        (conn,) = await connections.list_connections(engine)
        assert conn.mode == "api_key" and not conn.has_tokens
    finally:
        await engine.dispose()


async def test_provision_button_records_the_run_and_the_plan_gives_way_to_what_is_in_place(
    admin: httpx.AsyncClient,
) -> None:
    assert "Not provisioned yet" in (await admin.get("/")).text
    assert (await post(admin, "/provision")).status_code == 303
    page = (await admin.get("/")).text
    assert 'id="prov-status">Succeeded' in page and "Twenty 2.x" in page
    made = re.search(r"All (\d+) items of the data model are in place \((\d+) created by the last run\)", page)
    assert made and 0 < int(made.group(2)) <= int(made.group(1))
    assert "to create" not in page and "Plan:" not in page  # done, not still to do
    await post(admin, "/provision")
    page = (await admin.get("/")).text
    assert f"All {made.group(1)} items of the data model are in place." in page and "created by" not in page


async def test_needs_reconnect_pauses_the_sync_and_says_so(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await connect_flow(admin, whop_browser)
    runs_before = len(await run_store.recent_runs(engine, COMPANY_ID))
    await connections.mark_needs_reconnect(engine, COMPANY_ID, "Whop refused the refresh token (invalid_grant)")
    await post(admin, "/sync", kind="reconcile")
    page = (await admin.get("/")).text
    assert "Needs reconnect" in page and 'id="reconnect" class="primary"' in page
    assert "Sync is paused; nothing is lost." in page
    status = (await admin.get("/api/status")).json()
    assert status["connection"]["status"] == "needs_reconnect"
    assert status["job"]["status"] == "failed" and "reconnected" in status["job"]["error"]
    assert len(await run_store.recent_runs(engine, COMPANY_ID)) == runs_before


async def test_status_json_reports_the_job_and_the_connection(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient
) -> None:
    assert (await admin.get("/api/status")).json() == {"job": None, "connection": None}
    await connect_flow(admin, whop_browser)
    status = (await admin.get("/api/status")).json()
    job = status["job"]
    assert job["kind"] == "connect" and job["status"] == "succeeded" and job["percent"] == 100
    assert "People: 10 created, 0 updated, 0 unchanged" in job["summary"]
    assert status["connection"]["company_title"] == COMPANY_TITLE
    assert 3000 < status["connection"]["token_expires_in"] <= 3600


async def test_the_background_runner_reports_progress_live(
    settings: Settings, engine: AsyncEngine, transports: Transports, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in sync that stops at each object, so each step's progress can be looked at."""
    gates = {obj: asyncio.Event() for obj in ("start", "whopProduct", "person", "opportunity")}
    reached: dict[str, asyncio.Event] = {obj: asyncio.Event() for obj in gates}

    async def fake_run_sync(settings: Settings, **kwargs: Any) -> SyncResult:
        counts: dict[str, dict[str, int]] = {}
        reached["start"].set()
        await gates["start"].wait()
        for obj, n in (("whopProduct", 2), ("person", 10), ("opportunity", 12)):
            counts[obj] = {"created": n}
            kwargs["progress"](obj, counts)
            reached[obj].set()
            await gates[obj].wait()
        return SyncResult(run_id=7, status="succeeded", counts=counts, problems=[])

    monkeypatch.setattr(services, "run_sync", fake_run_sync)
    await connected(engine, settings)
    app = create_app(Runtime(settings, transports=transports, store=engine), background=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as c:
        await login(c)
        assert (await post(c, "/sync", kind="full")).status_code == 303
        seen = []
        for obj in gates:
            await asyncio.wait_for(reached[obj].wait(), 5)
            seen.append((await c.get("/api/status")).json()["job"])
            if obj == "person":
                page = (await c.get("/")).text
                assert 'data-active="1"' in page and "Step 2 of 3: People" in page and "/static/status.js" in page
                for job_button in ("provision", "sync-now", "full-resync"):  # one job at a time
                    assert " disabled " in button(page, job_button)
                assert "Buttons wait until “Full resync” finishes." in page
                busy = await post(c, "/sync", kind="full")
                assert busy.status_code == 303
                assert "already queued or running" in (await c.get("/")).text
            gates[obj].set()
        await asyncio.wait_for(app.state.ctx.jobs.wait_idle(), 5)
        final = (await c.get("/api/status")).json()["job"]
    assert [s["status"] for s in seen] == ["running"] * 4
    assert [s["percent"] for s in seen] == [0, 0, 33, 67]
    assert [s["step_label"] for s in seen] == ["Products", "Products", "People", "Opportunities"]
    assert seen[2]["message"] == "People: 10 created, 0 updated, 0 unchanged"
    assert final["status"] == "succeeded" and final["percent"] == 100 and final["run_id"] == 7
    assert final["summary"][1] == "People: 10 created, 0 updated, 0 unchanged"


async def test_a_real_background_sync_finishes_and_lands_in_the_runs_table(
    settings: Settings, engine: AsyncEngine, transports: Transports, whop_browser: httpx.AsyncClient
) -> None:
    app = create_app(Runtime(settings, transports=transports, store=engine), background=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as c:
        await login(c)
        await connect_flow(c, whop_browser)
        await asyncio.wait_for(app.state.ctx.jobs.wait_idle(), 60)
        await post(c, "/sync", kind="reconcile")
        await asyncio.wait_for(app.state.ctx.jobs.wait_idle(), 60)
        page = (await c.get("/")).text
    runs = await run_store.recent_runs(engine, COMPANY_ID)
    assert [(r.kind, r.trigger, r.status) for r in runs] == [
        ("reconcile", "admin", "succeeded"),
        ("full", "connect", "succeeded"),
    ]
    assert "by connect" in page and "by admin" in page and "People: 0 created, 0 updated, 10 unchanged" in page


async def test_a_failing_job_shows_its_error_and_where_it_stopped(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, engine: AsyncEngine, settings: Settings
) -> None:
    async def broken(settings: Settings, **kwargs: Any) -> SyncResult:
        raise services.SyncBusy("a sync of biz_acme is already running (host:1); try again when it ends")

    monkeypatch.setattr(services, "run_sync", broken)
    await connected(engine, settings)
    await post(admin, "/sync", kind="full")
    page = (await admin.get("/")).text
    assert 'id="job-status" class="badge tone-bad">Failed' in page and "already running" in page
    assert "Stopped at step 1 of 3: Products" in page and "3 of 3 steps" not in page
    assert " disabled" not in button(page, "sync-now")  # a finished job holds nothing back


async def test_unknown_sync_kind_is_refused(admin: httpx.AsyncClient) -> None:
    assert (await post(admin, "/sync", kind="everything")).status_code == 400


async def test_the_app_opens_its_own_store_in_its_lifespan(settings: Settings, transports: Transports) -> None:
    app = create_app(Runtime(settings, transports=transports))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as c,
    ):
        assert (await c.get("/healthz")).json() == {"ok": True}
        await login(c)
        assert (await c.get("/")).status_code == 200


async def test_signed_webhooks_reach_the_inbox_and_the_page_counts_them(
    settings: Settings, engine: AsyncEngine, transports: Transports
) -> None:
    from fakes.whop import signer

    secret = "ws_" + "a1" * 16
    app = create_app(
        Runtime(
            settings.model_copy(update={"whop_webhook_secret": SecretStr(secret)}), transports=transports, store=engine
        ),
        background=False,
    )
    envelope = {"id": signer.new_webhook_id(), "type": "membership.activated", "data": {"id": "mem_1"}}
    body, headers = signer.delivery(secret, envelope)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as c:
        assert (await c.post("/webhooks/whop", content=body, headers=headers)).status_code == 200
        await login(c)
        page = (await c.get("/")).text
    assert "<dt>Pending</dt><dd>1</dd>" in page


# The next step, error pages, the Twenty link ------------------------------------------------------


async def test_before_whop_is_connected_connect_whop_is_the_primary_button_and_sync_waits(
    admin: httpx.AsyncClient,
) -> None:
    page = (await admin.get("/")).text
    assert 'class="primary"' in button(page, "connect")
    assert "primary" not in button(page, "sync-now") and "primary" not in button(page, "provision")
    assert " disabled " in button(page, "sync-now") and " disabled " in button(page, "full-resync")
    assert "Connect Whop first: a sync reads your Whop company." in page

    await post(admin, "/sync", kind="reconcile")  # a stale form, or a click before the page refreshed
    page = (await admin.get("/")).text
    assert "Connect Whop first" in page and "WHOP_API_KEY" not in page
    assert (await admin.get("/api/status")).json()["job"] is None  # no job started only to fail


async def test_once_connected_and_provisioned_sync_now_is_the_primary_button(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient
) -> None:
    await connect_flow(admin, whop_browser)  # provisions and runs the first full sync
    page = (await admin.get("/")).text
    assert 'class="primary"' in button(page, "sync-now")
    assert "primary" not in button(page, "reconnect") and "primary" not in button(page, "provision")
    assert " disabled" not in button(page, "sync-now")


async def test_connected_but_not_provisioned_makes_provision_the_primary_button(
    admin: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    await connected(engine, settings)
    page = (await admin.get("/")).text
    assert 'class="primary"' in button(page, "provision") and "primary" not in button(page, "sync-now")


async def test_the_approver_is_named_as_whop_showed_them(
    admin: httpx.AsyncClient, whop_browser: httpx.AsyncClient
) -> None:
    await connect_flow(admin, whop_browser)
    page = (await admin.get("/")).text
    assert f'<dd id="approver">{OWNER_NAME}</dd>' in page
    assert "user_owner" not in page


async def test_the_page_links_to_the_twenty_workspace(admin: httpx.AsyncClient) -> None:
    page = (await admin.get("/")).text
    assert f'href="{TWENTY_URL}" id="twenty-link"' in page


async def test_an_unknown_url_gets_a_styled_page_and_api_clients_get_json(client: httpx.AsyncClient) -> None:
    page = await client.get("/no/such/page")
    assert page.status_code == 404
    assert "Page not found" in page.text and "/static/bridge.css" in page.text
    assert 'href="/">Back to the admin page' in page.text and "Not Found" not in page.text
    api = await client.get("/api/nothing")
    assert api.status_code == 404 and api.json() == {"error": "not found"}


async def test_an_unexpected_error_shows_a_styled_page_without_the_error(
    settings: Settings, engine: AsyncEngine, transports: Transports, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.web import views

    async def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("boom: internal detail that must not reach the page")

    monkeypatch.setattr(views, "admin_state", broken)
    app = create_app(Runtime(settings, transports=transports, store=engine), background=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BRIDGE_URL) as c:
        await login(c)
        page = await c.get("/")
    assert page.status_code == 500
    assert "Something went wrong" in page.text and "/static/bridge.css" in page.text
    assert "boom" not in page.text and "Traceback" not in page.text and "RuntimeError" not in page.text


# Webhook deliveries -----------------------------------------------------------------------------------


SECRET = "ws_" + "b2" * 16


@pytest.fixture
async def hooks(settings: Settings, engine: AsyncEngine, transports: Transports) -> httpx.AsyncClient:
    """A logged-in admin on an app whose webhook endpoint expects `SECRET`."""
    from contextlib import AsyncExitStack

    app = create_app(
        Runtime(
            settings.model_copy(update={"whop_webhook_secret": SecretStr(SECRET)}), transports=transports, store=engine
        ),
        background=False,
    )
    async with AsyncExitStack() as stack:
        c = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL)
        )
        await login(c)
        yield c


async def deliver(c: httpx.AsyncClient, secret: str, webhook_id: str, event_type: str = "membership.activated") -> int:
    from fakes.whop import signer

    envelope = {"id": webhook_id, "type": event_type, "account_id": COMPANY_ID, "data": {"id": "mem_1"}}
    body, headers = signer.delivery(secret, envelope)
    return (await c.post("/webhooks/whop", content=body, headers=headers)).status_code


async def test_deliveries_signed_with_another_secret_are_listed_as_rejected_and_raise_a_banner(
    hooks: httpx.AsyncClient,
) -> None:
    assert "rejected-banner" not in (await hooks.get("/")).text
    assert await deliver(hooks, "ws_" + "0f" * 16, "msg_wrongsecret000000000001") == 401

    page = (await hooks.get("/")).text
    assert "Whop's webhook deliveries are being rejected." in page
    assert "signature mismatch: check the webhook secret" in page
    rejected = (await hooks.get("/?show=rejected")).text
    assert "msg_wrongsecret000000000001" in rejected and "Rejected" in rejected
    assert "ws_" + "0f" * 16 not in page + rejected and SECRET not in page + rejected

    assert await deliver(hooks, SECRET, "msg_rightsecret000000000001") == 200  # the secret was fixed
    page = (await hooks.get("/")).text
    assert "rejected-banner" not in page  # an accepted delivery since: nothing is wrong now
    assert "msg_wrongsecret000000000001" in page  # still in the list


async def test_the_delivery_filters_show_one_outcome_each_and_failed_ones_can_be_replayed(
    hooks: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    from bridge.store import inbox

    for webhook_id in ("msg_applied0000000000000001", "msg_failed00000000000000001", "msg_waiting0000000000000001"):
        assert await deliver(hooks, SECRET, webhook_id) == 200
    assert await deliver(hooks, "ws_" + "0f" * 16, "msg_rejected000000000000001") == 401
    claimed = {e.webhook_id for e in await inbox.claim(engine, "test-worker", limit=3)}
    assert len(claimed) == 3  # the third stays claimed: received, not yet applied
    await inbox.mark_applied(engine, "msg_applied0000000000000001", "test-worker")
    failing = "msg_failed00000000000000001"
    await inbox.mark_failed(engine, failing, "test-worker", "Twenty answered HTTP 503", max_attempts=1)

    shown = {}
    for name in ("all", "received", "applied", "failed", "rejected"):
        page = (await hooks.get(f"/?show={name}")).text
        shown[name] = set(re.findall(r"<code>(msg_[a-z]+)0+1</code>", page))
        assert f'id="show-{name}" aria-current="true"' in page
    assert shown == {
        "all": {"msg_applied", "msg_failed", "msg_waiting", "msg_rejected"},
        "received": {"msg_waiting"},
        "applied": {"msg_applied"},
        "failed": {"msg_failed"},
        "rejected": {"msg_rejected"},
    }
    failed_page = (await hooks.get("/?show=failed")).text
    assert (
        "Twenty answered HTTP 503" in failed_page and 'aria-label="Replay msg_failed00000000000000001"' in failed_page
    )
    assert "Replay msg_rejected" not in (await hooks.get("/?show=rejected")).text  # never stored, nothing to replay

    replayed = await post(hooks, "/webhooks/replay", webhook_id=failing)
    assert replayed.headers["location"] == "/#deliveries"
    assert "Queued 1 webhook delivery again." in (await hooks.get("/")).text
    event = await inbox.get_event(engine, failing)
    assert event is not None and event.status == "pending"
