"""The admin page in a real browser: Debian's chromium driven by Playwright, with the bridge, a
fake Whop and a fake Twenty served by uvicorn on loopback. Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from bridge import services
from bridge.config import load_settings
from bridge.runtime import Runtime
from bridge.web.app import create_app
from fakes.twenty import FakeTwenty
from fakes.whop import OWNER_NAME, FakeWhop, seed_company, signer
from tests.loopback import free_port, serve
from tests.web.conftest import CLIENT_ID, CLIENT_SECRET, COMPANY_ID, COMPANY_TITLE, PASSWORD, TWENTY_KEY

CHROMIUM = "/usr/bin/chromium"
WEBHOOK_SECRET = "ws_" + "c3" * 16
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@dataclass
class Stack:
    bridge: str
    whop: FakeWhop
    database: Path

    def connections(self) -> int:
        with contextlib.closing(sqlite3.connect(self.database)) as db:
            return int(db.execute("SELECT count(*) FROM connections").fetchone()[0])


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    bridge_port = free_port()
    bridge_url = f"http://127.0.0.1:{bridge_port}"
    whop = FakeWhop(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[f"{bridge_url}/oauth/callback"],
        require_client_secret=True,
    )
    seed_company(whop, company_id=COMPANY_ID, title=COMPANY_TITLE, members=10, products=2)
    twenty = FakeTwenty(dialect="2.x", api_key=TWENTY_KEY)
    database = tmp_path / "bridge.db"
    with serve(whop, free_port()) as whop_url, serve(twenty, free_port()) as twenty_url:
        settings = load_settings(
            TWENTY_URL=twenty_url,
            TWENTY_API_KEY=TWENTY_KEY,
            DATABASE_URL=f"sqlite:///{database}",
            BRIDGE_PUBLIC_URL=bridge_url,
            BRIDGE_ADMIN_PASSWORD=PASSWORD,
            BRIDGE_SECRET_KEY=Fernet.generate_key().decode(),
            WHOP_CLIENT_ID=CLIENT_ID,
            WHOP_CLIENT_SECRET=CLIENT_SECRET,
            WHOP_API_URL=whop_url,
            WHOP_WEBHOOK_SECRET=WEBHOOK_SECRET,
            TWENTY_REQUESTS_PER_MINUTE=100_000,
        )
        # The real thing: the app opens (and migrates) its own store in its lifespan.
        with serve(create_app(Runtime(settings)), bridge_port, lifespan="on"):
            yield Stack(bridge=bridge_url, whop=whop, database=database)


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def log_in(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.bridge}/")
    assert page.url.endswith("/login")  # anonymous: sent to the login form
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{stack.bridge}/")


def test_connect_whop_approve_and_watch_the_first_sync(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    log_in(page, stack)
    expect(page.get_by_text("Not connected")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "connect-1-admin-page.png", full_page=True)

    page.get_by_role("button", name="Connect Whop").click()
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "connect-2-whop-consent.png", full_page=True)
    page.get_by_role("button", name="Approve").click()

    page.wait_for_url(f"{stack.bridge}/")
    expect(page.locator("#connected-to")).to_contain_text(f"Connected to {COMPANY_TITLE}")
    page.screenshot(path=ARTIFACTS / "connect-3-connected.png", full_page=True)

    # The page polls /api/status and reloads when the job ends.
    expect(page.locator("#job-status")).to_have_text("Finished", timeout=90_000)
    summary = page.locator("#job-summary")
    expect(summary).to_contain_text("Products: 2 created")
    expect(summary).to_contain_text("People: 10 created")
    expect(summary).to_contain_text("Opportunities: 12 created")
    expect(page.locator("#runs")).to_contain_text("succeeded")
    expect(page.locator("#runs")).to_contain_text("by connect")
    expect(page.locator("#prov-status")).to_have_text("Succeeded")
    page.screenshot(path=ARTIFACTS / "connect-4-first-sync-finished.png", full_page=True)

    assert stack.connections() == 1
    html = page.content()
    for token in [*stack.whop.oauth._access, *stack.whop.oauth._refresh]:
        assert token not in html


def test_deny_shows_a_clear_page_and_stores_nothing(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    log_in(page, stack)
    page.get_by_role("button", name="Connect Whop").click()
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Access denied")).to_be_visible()
    expect(page.locator("#message")).to_contain_text("Nothing was stored")
    page.screenshot(path=ARTIFACTS / "deny-1-access-denied.png", full_page=True)
    page.get_by_role("link", name="Back to the admin page").click()
    expect(page.get_by_text("Not connected")).to_be_visible()
    assert stack.connections() == 0
    assert stack.whop.stats.tokens_issued == 0


class Gate:
    """Holds every sync at its start until `release` (the app runs in a thread of this process)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = threading.Event()
        self.reached = threading.Event()
        real = services.run_sync

        async def gated(*args: Any, **kwargs: Any) -> Any:
            self.reached.set()
            await asyncio.to_thread(self.opened.wait, 60)
            return await real(*args, **kwargs)

        monkeypatch.setattr(services, "run_sync", gated)

    def wait_reached(self) -> None:
        assert self.reached.wait(60), "no sync started"

    def release(self) -> None:
        self.opened.set()

    def close(self) -> None:
        self.opened.clear()
        self.reached.clear()


def expect_job_buttons(page: Any, *, disabled: bool) -> None:
    from playwright.sync_api import expect

    for name in ("Provision", "Sync now", "Full resync"):
        button = page.get_by_role("button", name=name, exact=True)
        (expect(button).to_be_disabled if disabled else expect(button).to_be_enabled)()


def test_the_page_through_not_connected_connecting_syncing_and_rejected_deliveries(
    stack: Stack, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    gate = Gate(monkeypatch)
    log_in(page, stack)

    # Not connected: Connect Whop is the one primary button; a sync has nothing to read yet.
    expect(page.locator("#conn-status")).to_have_text("Not connected")
    expect(page.get_by_role("button", name="Connect Whop")).to_have_class("primary")
    expect(page.get_by_role("button", name="Sync now")).to_be_disabled()
    expect(page.get_by_text("Connect Whop first: a sync reads your Whop company.")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "states-1-not-connected.png", full_page=True)

    # Connecting: approved at Whop, the first job runs, and its buttons wait.
    page.get_by_role("button", name="Connect Whop").click()
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{stack.bridge}/")
    gate.wait_reached()
    page.reload()
    expect(page.locator("#job-title")).to_have_text("Provisioning and first full sync")
    expect(page.locator("#job-status")).to_have_text("Running")
    expect(page.locator("#approver")).to_have_text(OWNER_NAME)
    expect_job_buttons(page, disabled=True)
    page.screenshot(path=ARTIFACTS / "states-2-connecting.png", full_page=True)
    gate.release()
    expect(page.locator("#job-status")).to_have_text("Finished", timeout=90_000)  # the page reloads itself
    expect_job_buttons(page, disabled=False)
    expect(page.get_by_role("button", name="Sync now")).to_have_class("primary")
    expect(page.locator("#prov-plan")).to_contain_text("items of the data model are in place")
    expect(page.get_by_text("to create")).to_have_count(0)

    # Syncing: Sync now starts a job; every job button waits for it.
    gate.close()
    page.get_by_role("button", name="Sync now").click()
    gate.wait_reached()
    expect(page.locator("#job-title")).to_have_text("Sync now (reconcile)")
    expect_job_buttons(page, disabled=True)
    expect(page.locator("#busy-note")).to_contain_text("Sync now (reconcile)")
    page.screenshot(path=ARTIFACTS / "states-3-syncing.png", full_page=True)
    gate.release()
    expect(page.locator("#job-status")).to_have_text("Finished", timeout=90_000)
    expect_job_buttons(page, disabled=False)

    # Rejected deliveries: something signs with another secret; the page says what to check.
    envelope = {"id": signer.new_webhook_id(), "type": "membership.activated", "data": {"id": "mem_1"}}
    body, headers = signer.delivery("ws_" + "0d" * 16, envelope)
    assert httpx.post(f"{stack.bridge}/webhooks/whop", content=body, headers=headers).status_code == 401
    page.reload()
    banner = page.get_by_role("alert")
    expect(banner).to_contain_text("Whop's webhook deliveries are being rejected.")
    expect(banner).to_contain_text("signature mismatch: check the webhook secret")
    page.screenshot(path=ARTIFACTS / "states-4-rejected-banner.png", full_page=True)
    banner.get_by_role("link", name="See the rejected deliveries").click()
    expect(page.locator("#show-rejected")).to_have_attribute("aria-current", "true")
    row = page.locator("#delivery-list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Rejected")
    expect(row).to_contain_text(envelope["id"])
    assert WEBHOOK_SECRET not in page.content()


def test_an_unknown_address_shows_the_styled_not_found_page(stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    response = page.goto(f"{stack.bridge}/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    page.get_by_role("link", name="Back to the admin page").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
