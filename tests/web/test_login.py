"""Login guessing is slowed per account and per client, shared by every replica through the store;
X-Forwarded-For counts only from trusted proxies; the wait is bounded, so the admin always gets in
after it; and `serve` refuses a weak admin password."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from bridge import cli
from bridge.config import Settings, load_settings
from bridge.runtime import Runtime, Transports
from bridge.store.db import create_engine
from bridge.store.throttle import Backoff
from bridge.web.app import create_app
from bridge.web.security import ACCOUNT_BACKOFF, CLIENT_BACKOFF
from tests.web.conftest import BRIDGE_URL, PASSWORD, Clock, csrf_of, login, page_csrf

LONGEST_WAIT = 60  # seconds: the most the backoff ever asks for
FREE_GUESSES = 10  # guesses before any wait

MakeApp = Callable[..., Starlette]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_app(
    settings: Settings, transports: Transports, engine: AsyncEngine, clock: Clock
) -> AsyncIterator[MakeApp]:
    """An app over the test database; each call with `own_engine` is another replica."""
    engines: list[AsyncEngine] = []

    def make(own_engine: bool = False, **overrides: Any) -> Starlette:
        changed = settings.model_copy(update=overrides) if overrides else settings
        store = engine
        if own_engine:
            store = create_engine(settings.database_url)
            engines.append(store)
        app = create_app(Runtime(changed, transports=transports, store=store), background=False)
        app.state.ctx.throttle.clock = clock
        app.state.ctx.sessions.clock = clock
        return app

    yield make
    for each in engines:
        await each.dispose()


def browser(app: Any, address: str = "127.0.0.1", forwarded_for: str | None = None) -> httpx.AsyncClient:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BRIDGE_URL, headers=headers)


def wait_of(response: httpx.Response) -> int:
    assert response.status_code == 429, response.status_code
    return int(response.headers["retry-after"])


async def guess_until_held(client: httpx.AsyncClient, clock: Clock, guesses: int) -> list[int]:
    """Make `guesses` wrong guesses, waiting out every backoff; the waits asked for."""
    waits: list[int] = []
    made = 0
    while made < guesses:
        response = await login(client, "wrong guess")
        if response.status_code == 429:
            waits.append(wait_of(response))
            clock.advance(waits[-1])
            continue
        assert response.status_code == 401
        made += 1
    return waits


async def test_guesses_from_many_addresses_share_the_account_backoff(make_app: MakeApp) -> None:
    app = make_app()
    for n in range(FREE_GUESSES):
        async with browser(app, f"198.51.100.{n + 1}") as guesser:
            assert (await login(guesser, "wrong guess")).status_code == 401
    async with browser(app, "203.0.113.9") as admin:
        assert 1 <= wait_of(await login(admin)) <= LONGEST_WAIT  # even the right password waits


async def test_the_admin_gets_in_after_a_bounded_backoff_however_long_another_address_guessed(
    make_app: MakeApp, clock: Clock
) -> None:
    app = make_app()
    async with browser(app, "198.51.100.7") as attacker:
        waits = await guess_until_held(attacker, clock, 60)
    assert waits and max(waits) <= LONGEST_WAIT
    assert waits[0] < waits[3] < waits[6], waits  # it backs off, then stays at the bound
    async with browser(app, "203.0.113.9") as admin:
        response = await login(admin)
        if response.status_code == 429:
            assert wait_of(response) <= LONGEST_WAIT
            clock.advance(wait_of(response))
            response = await login(admin)
        assert response.status_code == 303
        assert (await admin.get("/")).status_code == 200


T0 = 1_800_000_000.0  # a whole second, so quarter-second steps and the waits add up exactly


def checks_allowed(rule: Backoff, tries: int, every: float) -> int:
    """How many of `tries` attempts, one every `every` seconds, `rule` lets one key check (whole waits)."""
    checks, blocked_until = 0, 0.0
    for n in range(tries):
        if n * every >= blocked_until:
            checks += 1
            blocked_until = n * every + rule.wait(checks)
    return checks


async def guesses(client: httpx.AsyncClient) -> Callable[[], Awaitable[int]]:
    """A guesser that fetched the form once: each call posts a wrong password, its status."""
    token = csrf_of((await client.get("/login")).text)

    async def guess() -> int:
        response = await client.post("/login", data={"password": "wrong guess", "csrf_token": token})
        return response.status_code

    return guess


@pytest.mark.parametrize("mistakes", [0, 3])
async def test_a_guesser_hammering_from_one_address_never_keeps_the_admin_at_a_new_address_out(
    make_app: MakeApp, clock: Clock, mistakes: int
) -> None:
    """The attack on the bridge: wrong passwords four times a second from one address, first to
    every moment a wait ends, and the admin, each time in a new browser at another address, trying
    every 5 s (having mistyped a few times first): the admin is in within a minute. Before, the
    account's one backoff gave every turn to the guesser: 30 tries over 150 s, all 429."""
    app = make_app()
    app.state.ctx.throttle.rand = lambda: 1.0  # whole waits, so the guesser is first when one ends
    clock.now = T0
    first_try = None
    got_in = None
    typed = [*["a typo"] * mistakes, PASSWORD]
    async with browser(app, "198.51.100.7") as guesser:
        guess = await guesses(guesser)
        for tick in range(4 * 180):
            assert await guess() in (401, 429)
            if tick >= 4 * 15 and tick % 20 == 0:  # from 15 s on, every 5 s
                first_try = first_try or clock.now
                async with browser(app, "203.0.113.9") as admin:
                    status = (await login(admin, typed[0])).status_code
                if status != 429:
                    typed.pop(0)
                if status == 303:
                    got_in = clock.now - first_try
                    break
            clock.advance(0.25)
    assert got_in is not None and got_in <= 60, f"the admin was still out after {clock.now - T0 - 15:.0f} s"


async def test_guessing_from_one_address_is_as_slow_as_that_address_s_own_backoff(
    make_app: MakeApp, clock: Clock
) -> None:
    """The account's lanes take nothing off the per-client backoff: ten checks, then waits
    doubling to a minute, exactly as before."""
    app = make_app()
    app.state.ctx.throttle.rand = lambda: 1.0
    clock.now = T0
    tries, every = 200, 1.5  # five minutes, past the longest wait
    checked = 0
    async with browser(app, "198.51.100.7") as guesser:
        guess = await guesses(guesser)
        for _ in range(tries):
            checked += await guess() == 401
            clock.advance(every)
    assert checked == checks_allowed(CLIENT_BACKOFF, tries, every)


async def test_guessing_spread_over_many_addresses_gets_no_more_than_the_account_s_two_lanes(
    make_app: MakeApp, clock: Clock
) -> None:
    """Every 3 s a guess from a new address (the lane for clients within their free checks), and
    from each of two that spent theirs first (the other lane): together no more checks than two
    of the account's backoffs allow."""
    app = make_app()
    app.state.ctx.throttle.rand = lambda: 1.0
    clock.now = T0
    tries, every = 80, 3.0
    veterans = [browser(app, f"192.0.2.{n}") for n in range(1, 3)]
    checked = 0
    try:
        veteran_guesses = [await guesses(v) for v in veterans]
        for guess in veteran_guesses:
            for _ in range(FREE_GUESSES):
                checked += await guess() == 401
        for n in range(tries):
            async with browser(app, f"198.51.{n // 250}.{n % 250 + 1}") as newcomer:
                checked += (await login(newcomer, "wrong guess")).status_code == 401
            for guess in veteran_guesses:
                checked += await guess() == 401
            clock.advance(every)
    finally:
        for v in veterans:
            await v.aclose()
    assert checked <= 2 * checks_allowed(ACCOUNT_BACKOFF, tries, every)


async def test_guessing_is_throttled_across_replicas_sharing_the_database(make_app: MakeApp) -> None:
    one, two = make_app(), make_app(own_engine=True)
    half = FREE_GUESSES // 2
    async with browser(one) as a, browser(two) as b:
        for _ in range(half):
            assert (await login(a, "wrong guess")).status_code == 401
        for _ in range(FREE_GUESSES - half):
            assert (await login(b, "wrong guess")).status_code == 401
        assert (await login(a)).status_code == 429
        assert (await login(b)).status_code == 429


@pytest.fixture
def configured_by_serve(monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: AsyncEngine) -> tuple[Any, Any]:
    """The app `serve --role web` made, and the same wrapped by uvicorn exactly as `serve`
    configures it (proxy headers and all)."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app, kwargs=kwargs))
    monkeypatch.setattr("bridge.logs.configure_logging", lambda *a, **k: None)
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "filters", [])
    assert settings.bridge_secret_key is not None
    for name, value in {
        "DATABASE_URL": settings.database_url,
        "BRIDGE_SECRET_KEY": settings.bridge_secret_key.get_secret_value(),
        "BRIDGE_ADMIN_PASSWORD": PASSWORD,
        "BRIDGE_PUBLIC_URL": BRIDGE_URL,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BRIDGE_TRUSTED_PROXIES", raising=False)
    result = CliRunner().invoke(cli.main, ["serve", "--role", "web"])
    assert result.exit_code == 0, result.output
    config = uvicorn.Config(seen["app"], **seen["kwargs"])
    config.load()
    return seen["app"], config.loaded_app


@pytest.fixture
async def served_by_uvicorn(configured_by_serve: tuple[Any, Any]) -> AsyncIterator[Any]:
    """That app, started and stopped as uvicorn would: its lifespan closes the runtime `serve` made."""
    app, served = configured_by_serve
    async with app.router.lifespan_context(app):
        yield served


async def test_a_spoofed_x_forwarded_for_from_loopback_neither_picks_the_key_nor_the_logged_address(
    served_by_uvicorn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for n in range(FREE_GUESSES):
        async with browser(served_by_uvicorn, "127.0.0.1", forwarded_for=f"192.0.2.{n + 1}") as spoofer:
            assert (await login(spoofer, "wrong guess")).status_code == 401
    async with browser(served_by_uvicorn, "127.0.0.1", forwarded_for="192.0.2.200") as spoofer:
        assert (await login(spoofer, "wrong guess")).status_code == 429
    failures = [r.getMessage() for r in caplog.records if "failed admin login" in r.getMessage()]
    assert len(failures) == FREE_GUESSES
    assert all("127.0.0.1" in line and "192.0.2." not in line for line in failures), failures


async def test_a_trusted_proxy_names_the_client_and_the_admin_s_login_does_not_free_the_guesser(
    make_app: MakeApp, clock: Clock
) -> None:
    app = make_app(trusted_proxies="10.0.0.0/8, 127.0.0.1")
    proxy = "10.1.2.3"
    async with browser(app, proxy, forwarded_for="203.0.113.7") as attacker:
        await guess_until_held(attacker, clock, FREE_GUESSES + 8)  # up to the longest wait
        async with browser(app, proxy, forwarded_for="198.51.100.9, 10.9.9.9") as admin:
            response = await login(admin)
            if response.status_code == 429:
                clock.advance(wait_of(response))
                response = await login(admin)
            assert response.status_code == 303
        # The account starts afresh, but the guesser's own address keeps its backoff: once its
        # wait runs out (the admin, in the other lane, did not wait for it), one guess, then a
        # long wait again…
        response = await login(attacker, "wrong guess")
        if response.status_code == 429:
            clock.advance(wait_of(response))
            response = await login(attacker, "wrong guess")
        assert response.status_code == 401
        assert wait_of(await login(attacker, "wrong guess")) > LONGEST_WAIT / 2
    # …while another client behind the same proxy is not held back.
    async with browser(app, proxy, forwarded_for="192.0.2.44") as other:
        assert (await login(other, "wrong guess")).status_code == 401
        assert (await login(other, "wrong guess")).status_code == 401
    # The header counts only from the proxy: sent straight from an address, it is ignored.
    async with browser(app, "203.0.113.7", forwarded_for="192.0.2.45") as direct:
        assert (await login(direct, "wrong guess")).status_code == 429  # held as 203.0.113.7


async def test_a_browser_that_logged_in_before_is_not_held_back_by_guessing_behind_the_same_proxy(
    make_app: MakeApp, clock: Clock
) -> None:
    app = make_app()  # no trusted proxy: everyone seems to come from the proxy's address
    async with browser(app, "172.18.0.1") as laptop:
        assert (await login(laptop)).status_code == 303
        await laptop.post("/logout", data={"csrf_token": await page_csrf(laptop)})
        async with browser(app, "172.18.0.1") as attacker:
            await guess_until_held(attacker, clock, FREE_GUESSES + 5)
            assert (await login(attacker)).status_code == 429
            assert (await login(laptop)).status_code == 303  # the laptop needs no wait
        # The laptop's own guesses are still slowed.
        await laptop.post("/logout", data={"csrf_token": await page_csrf(laptop)})
        for _ in range(FREE_GUESSES):
            assert (await login(laptop, "wrong guess")).status_code == 401
        assert (await login(laptop)).status_code == 429


# Password strength at start ---------------------------------------------------------------------


@pytest.fixture
def serve_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app))
    monkeypatch.setattr("bridge.logs.configure_logging", lambda *a, **k: None)
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "filters", [])
    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/serve.db")
    monkeypatch.delenv("BRIDGE_ADMIN_PASSWORD", raising=False)
    return seen


@pytest.mark.parametrize(
    "password",
    [None, "", "   ", "x", "hunter2", "eleven-char", "aaaaaaaaaaaaaaaa", "abababababababab", "            "],
)
@pytest.mark.parametrize("role", ["all", "web"])
def test_serve_refuses_a_missing_or_weak_admin_password(
    serve_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, password: str | None, role: str
) -> None:
    if password is not None:
        monkeypatch.setenv("BRIDGE_ADMIN_PASSWORD", password)
    result = CliRunner().invoke(cli.main, ["serve", "--role", role])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: configuration: BRIDGE_ADMIN_PASSWORD"), result.output
    if password and password.strip():
        assert password not in lines[0].removeprefix("error: configuration: BRIDGE_ADMIN_PASSWORD")
    assert "app" not in serve_env  # nothing started


@pytest.mark.parametrize("password", ["correct horse battery", "Tr0ub4dor&3xyz", "k2QfW9xZ-4pLr7Vb"])
def test_serve_starts_with_a_passphrase_or_a_long_random_password(
    serve_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    monkeypatch.setenv("BRIDGE_ADMIN_PASSWORD", password)
    result = CliRunner().invoke(cli.main, ["serve"])
    assert result.exit_code == 0, result.output
    assert "app" in serve_env


def test_a_worker_needs_no_admin_password(serve_env: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--role", "worker"])
    assert result.exit_code == 0, result.output


def test_the_test_and_demo_passwords_meet_the_rule() -> None:
    from bridge.config import password_problem

    assert password_problem(PASSWORD) is None
    assert password_problem("demo-" + secrets.token_hex(4)) is None  # as scripts/demo.py makes it


def test_settings_name_a_malformed_trusted_proxy() -> None:
    from bridge.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_settings(BRIDGE_TRUSTED_PROXIES="10.0.0.0/8, proxy.example")
    assert info.value.variable == "BRIDGE_TRUSTED_PROXIES"
    settings = load_settings(BRIDGE_TRUSTED_PROXIES="10.0.0.0/8, 2001:db8::/32,192.0.2.1")
    assert [str(n) for n in settings.trusted_networks] == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32"]
