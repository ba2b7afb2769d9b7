"""Fixtures for the web app: the bridge, a fake Whop and a fake Twenty, all in-process."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from bridge.config import Settings, load_settings
from bridge.runtime import Runtime, Transports
from bridge.web.app import create_app
from fakes.twenty import FakeTwenty
from fakes.whop import FakeWhop, seed_company
from tests.conftest import open_store

BRIDGE_URL = "http://bridge.test"
WHOP_URL = "http://whop.test"
TWENTY_URL = "http://twenty.test"
TWENTY_KEY = "twenty-test-key-0123456789"
CLIENT_ID = "app_bridgetest"
CLIENT_SECRET = "whop-client-secret-0123456789"
PASSWORD = "correct horse battery staple"
COMPANY_ID = "biz_acme"
COMPANY_TITLE = "Acme Trading"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def settings(tmp_path: object, secret_key: str) -> Settings:
    return load_settings(
        TWENTY_URL=TWENTY_URL,
        TWENTY_API_KEY=TWENTY_KEY,
        DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db",
        BRIDGE_PUBLIC_URL=BRIDGE_URL,
        BRIDGE_ADMIN_PASSWORD=PASSWORD,
        BRIDGE_SECRET_KEY=secret_key,
        WHOP_CLIENT_ID=CLIENT_ID,
        WHOP_CLIENT_SECRET=CLIENT_SECRET,
        WHOP_API_URL=WHOP_URL,
        TWENTY_REQUESTS_PER_MINUTE=100_000,
        WHOP_REQUESTS_PER_SECOND=10_000,
    )


@pytest.fixture
def whop_clock() -> Clock:
    return Clock()


@pytest.fixture
def fake_whop(whop_clock: Clock) -> FakeWhop:
    fake = FakeWhop(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[f"{BRIDGE_URL}/oauth/callback"],
        require_client_secret=True,
        clock=whop_clock,
    )
    seed_company(fake, company_id=COMPANY_ID, title=COMPANY_TITLE, members=10, products=2)
    return fake


@pytest.fixture
def fake_twenty() -> FakeTwenty:
    return FakeTwenty(dialect="2.x", api_key=TWENTY_KEY)


@pytest.fixture
def transports(fake_whop: FakeWhop, fake_twenty: FakeTwenty) -> Transports:
    return Transports(twenty=httpx.ASGITransport(app=fake_twenty), whop=httpx.ASGITransport(app=fake_whop))


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = await open_store(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def app(settings: Settings, transports: Transports, engine: AsyncEngine) -> Starlette:
    return create_app(Runtime(settings, transports=transports, store=engine), background=False)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BRIDGE_URL) as c:
        yield c


@pytest.fixture
async def whop_browser(fake_whop: FakeWhop) -> AsyncIterator[httpx.AsyncClient]:
    """Plays the admin's browser on the fake Whop's consent page."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake_whop), base_url=WHOP_URL) as c:
        yield c


async def login(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"password": password, "csrf_token": csrf_of(page.text)})


async def page_csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/")
    assert page.status_code == 200, page.status_code
    return csrf_of(page.text)


@dataclass
class Consent:
    authorize_url: str
    callback: str  # path + query of the redirect back to the bridge


async def start_connect(client: httpx.AsyncClient) -> str:
    response = await client.post("/connect", data={"csrf_token": await page_csrf(client)})
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def consent(whop: httpx.AsyncClient, authorize_url: str, decision: str = "approve") -> str:
    """Open Whop's consent page, answer it, return the bridge callback (path?query)."""
    page = await whop.get(authorize_url)
    assert page.status_code == 200, page.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert request_id
    answer = await whop.post(
        "/oauth/authorize/decision", data={"request_id": request_id.group(1), "decision": decision}
    )
    assert answer.status_code == 302, answer.text
    target = urlsplit(answer.headers["location"])
    assert f"{target.scheme}://{target.netloc}" == BRIDGE_URL
    return f"{target.path}?{target.query}"


async def connect_flow(client: httpx.AsyncClient, whop: httpx.AsyncClient, decision: str = "approve") -> httpx.Response:
    return await client.get(await consent(whop, await start_connect(client), decision))


class Recorder(httpx.AsyncBaseTransport):
    """Wraps a transport and keeps every request (method, path, headers, body) for assertions."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def to(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


async def authorization_code(fake: FakeWhop, authorize_url: str) -> str:
    """Approve `authorize_url` on the fake (as the seeded owner) and return the code it issues."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url=WHOP_URL) as browser:
        callback = await consent(browser, authorize_url)
    query = dict(pair.split("=", 1) for pair in urlsplit(callback).query.split("&"))
    return query["code"]


class Clock:
    """A settable clock for the fakes (seconds since the epoch)."""

    def __init__(self, start: float | None = None) -> None:
        import time

        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
