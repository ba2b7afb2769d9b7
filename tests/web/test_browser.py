"""Connect Whop in a real browser: Debian's chromium driven by Playwright, with the bridge, a
fake Whop and a fake Twenty served by uvicorn on loopback. Screenshots go to test-artifacts/."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bridge.config import load_settings
from bridge.runtime import Runtime
from bridge.web.app import create_app
from tests.fakes.twenty import FakeTwenty
from tests.fakes.whop import FakeWhop, seed_company
from tests.loopback import free_port, serve
from tests.web.conftest import CLIENT_ID, CLIENT_SECRET, COMPANY_ID, COMPANY_TITLE, PASSWORD, TWENTY_KEY

CHROMIUM = "/usr/bin/chromium"
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
