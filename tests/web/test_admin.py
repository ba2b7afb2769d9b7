"""The admin page: API-key mode, needs-reconnect, provisioning, jobs with live progress."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import services
from bridge.config import Settings, load_settings
from bridge.runtime import Runtime, Transports
from bridge.store import connections
from bridge.store import runs as run_store
from bridge.sync.engine import SyncResult
from bridge.web.app import create_app
from tests.conftest import open_store
from tests.fakes.whop import FakeWhop
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


async def test_provision_button_records_and_shows_the_plan(admin: httpx.AsyncClient) -> None:
    assert "Not provisioned yet" in (await admin.get("/")).text
    assert (await post(admin, "/provision")).status_code == 303
    page = (await admin.get("/")).text
    assert 'id="prov-status">Succeeded' in page and "Twenty 2.x" in page and "to create" in page
    await post(admin, "/provision")
    assert "already there" in (await admin.get("/")).text


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


async def test_a_failing_job_shows_its_error(admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(settings: Settings, **kwargs: Any) -> SyncResult:
        raise services.SyncBusy("a sync of biz_acme is already running (host:1); try again when it ends")

    monkeypatch.setattr(services, "run_sync", broken)
    await post(admin, "/sync", kind="full")
    page = (await admin.get("/")).text
    assert 'id="job-status" class="badge tone-bad">Failed' in page and "already running" in page


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
    from tests import signer

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
