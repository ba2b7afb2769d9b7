"""The live suite's harness: a real Twenty given by the environment, the fake Whop on loopback.

    TWENTY_LIVE_URL=http://127.0.0.1:3000 TWENTY_LIVE_API_KEY=… TWENTY_LIVE_RESET='…' scripts/live

`TWENTY_LIVE_RESET` is a shell command that puts the workspace back to a fresh one (the suite
writes records, views and fields into it). It runs once, when the first live test starts; the
workspace is then provisioned twice and the main company synced in full, and every test works
on records of its own (its own memberships, its own companies), so the tests need no order.

One bridge database serves the whole session, in-process runtimes and `serve` subprocesses
alike: every Twenty call of the suite, the harness's own reads included, draws from the one
request budget the bridge keeps there, so the suite stays within Twenty's limit (100 a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.fernet import Fernet

from bridge import companies
from bridge.config import Settings, load_settings
from bridge.runtime import Runtime
from bridge.services import provision_workspace, run_sync
from bridge.sync.engine import SyncResult
from bridge.twenty.data import ObjectApi, TwentyDataClient
from bridge.twenty.provision import ApplyResult
from fakes.whop import FakeWhop, SeededCompany, seed_company

LIVE_URL = os.environ.get("TWENTY_LIVE_URL", "").rstrip("/")
LIVE_KEY = os.environ.get("TWENTY_LIVE_API_KEY", "")
LIVE_RESET = os.environ.get("TWENTY_LIVE_RESET", "")
_MISSING = [name for name, value in (("TWENTY_LIVE_URL", LIVE_URL), ("TWENTY_LIVE_API_KEY", LIVE_KEY),
            ("TWENTY_LIVE_RESET", LIVE_RESET)) if not value]  # fmt: skip
CONFIGURED = not _MISSING
SKIP_REASON = (
    f"live suite: no real Twenty server given ({', '.join(_MISSING)} not set); "
    "README 'Checking against a real Twenty' says how to run it"
)

MAIN, MAIN_KEY = "biz_livemain", "live-whop-main-key"  # the API-key company of WHOP_API_KEY
SHOP_A, SHOP_A_KEY = "biz_liveshopa", "live-whop-shop-a-key"  # two more, added with `connect`
SHOP_B, SHOP_B_KEY = "biz_liveshopb", "live-whop-shop-b-key"
WEBHOOK_SECRET = "ws_live_suite_secret_0123456789abcdef"  # WHOP_WEBHOOK_SECRET, for the main company
PUBLIC_URL = "http://127.0.0.1:8999"  # never served: only where Whop is told to send webhooks

T = TypeVar("T")


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to the end on a loop of its own, in a thread (a session fixture runs
    outside the tests' loops and must not replace the loop pytest-asyncio set)."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=target, name="live-setup")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]  # type: ignore[no-any-return]


def reset_workspace() -> float:
    """Run TWENTY_LIVE_RESET; returns the seconds it took. Its output is shown if it fails."""
    started = time.monotonic()
    done = subprocess.run(LIVE_RESET, shell=True, capture_output=True, text=True, timeout=900)  # noqa: S602
    if done.returncode != 0:
        pytest.fail(
            f"TWENTY_LIVE_RESET ({shlex.quote(LIVE_RESET)}) exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return time.monotonic() - started


@dataclass
class TwoCompanies:
    """Companies A and B, each connected with its own API key and synced in full."""

    a: SeededCompany
    b: SeededCompany
    shared_email: str  # a buyer of both
    syncs: dict[str, SyncResult]
    secrets: dict[str, str]  # each company's webhook secret, as Whop gave it at `connect`


@dataclass
class LiveWorld:
    """The session's fake Whop, bridge database and what the setup did to the real Twenty."""

    whop: FakeWhop
    whop_url: str
    db: Path
    main: SeededCompany
    secret_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    reset_seconds: float = 0.0
    provisioned: list[ApplyResult] = field(default_factory=list)
    first_sync: SyncResult | None = None
    dialect: str = ""
    _two: TwoCompanies | None = None

    def settings(self, **extra: Any) -> Settings:
        values: dict[str, Any] = {
            "TWENTY_URL": LIVE_URL,
            "TWENTY_API_KEY": LIVE_KEY,
            "WHOP_API_URL": self.whop_url,
            "WHOP_API_KEY": MAIN_KEY,
            "WHOP_COMPANY_ID": MAIN,
            "WHOP_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "WHOP_REQUESTS_PER_SECOND": 200,
            "DATABASE_URL": f"sqlite:///{self.db}",
            "BRIDGE_SECRET_KEY": self.secret_key,
            "BRIDGE_PUBLIC_URL": PUBLIC_URL,
            **extra,
        }
        return load_settings(_env_file=None, **values)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a bridge subprocess (`serve`) on the same database and servers."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TWENTY_", "WHOP_", "BRIDGE_", "DATABASE_"))}
        return {
            **base,
            "TWENTY_URL": LIVE_URL,
            "TWENTY_API_KEY": LIVE_KEY,
            "WHOP_API_URL": self.whop_url,
            "WHOP_API_KEY": MAIN_KEY,
            "WHOP_COMPANY_ID": MAIN,
            "WHOP_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "DATABASE_URL": f"sqlite:///{self.db}",
            "BRIDGE_SECRET_KEY": self.secret_key,
            "BRIDGE_PUBLIC_URL": PUBLIC_URL,
            "BRIDGE_ADMIN_PASSWORD": "live suite admin passphrase",
            **extra,
        }

    @contextlib.asynccontextmanager
    async def runtime(self, **extra: Any) -> AsyncIterator[Runtime]:
        """A bridge process's runtime on the session's database (opened and closed per use)."""
        runtime = await Runtime.open(self.settings(**extra))
        runtime.deletions.interval = 0  # look at every pass (once a minute in production)
        try:
            yield runtime
        finally:
            await runtime.aclose()

    async def setup(self) -> None:
        """Provision twice (the second must change nothing), then the main company's backfill."""
        async with self.runtime() as runtime:
            for _ in range(2):
                self.provisioned.append(await provision_workspace(runtime))
            self.dialect = self.provisioned[0].plan.dialect or ""
            self.first_sync = await run_sync(runtime, kind="full", company_id=MAIN)

    def two_companies(self) -> TwoCompanies:
        """Companies A and B connected and synced, once per session (on first use)."""
        if self._two is None:
            self._two = run_async(self._connect_two)
        return self._two

    async def _connect_two(self) -> TwoCompanies:
        a = seed_company(
            self.whop, company_id=SHOP_A, title="Live Shop A", members=8, memberships=10, products=2, seed=31,
            api_key=SHOP_A_KEY, neighbor=False, owner_user_id=None,
        )  # fmt: skip
        shared = next(
            self.whop.members[m].email
            for m in a.member_ids
            if self.whop.members[m].user_id and self.whop.members[m].email
        )
        assert shared is not None
        b = seed_company(
            self.whop, company_id=SHOP_B, title="Live Shop B", members=8, memberships=10, products=2, seed=32,
            api_key=SHOP_B_KEY, neighbor=False, owner_user_id=None, shared_emails=[shared],
        )  # fmt: skip
        syncs: dict[str, SyncResult] = {}
        async with self.runtime() as runtime:
            for key in (SHOP_A_KEY, SHOP_B_KEY):
                await companies.connect_api_key(runtime, key)
            for company in (SHOP_A, SHOP_B):
                syncs[company] = await run_sync(runtime, kind="full", company_id=company)
        secrets = {c: self.whop.webhooks_of(c)[0].secret for c in (SHOP_A, SHOP_B)}
        return TwoCompanies(a, b, shared, syncs, secrets)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWorld]:
    """Reset the real workspace, provision it twice and back-fill the main company: once."""
    if not CONFIGURED:
        pytest.skip(SKIP_REASON)
    whop = FakeWhop(api_key=MAIN_KEY)
    main = seed_company(
        whop, company_id=MAIN, title="Live Main Co", members=24, memberships=30, products=3, seed=21, neighbor=False
    )
    with whop.serve() as whop_url:
        world = LiveWorld(whop, whop_url, tmp_path_factory.mktemp("live") / "bridge.db", main)
        world.reset_seconds = reset_workspace()
        run_async(world.setup)
        yield world


# Reading the real Twenty -------------------------------------------------------------------------


async def by_key(
    twenty: TwentyDataClient, obj: ObjectApi, keys: list[str], selection: str | None = None, *, deleted: bool = False
) -> dict[str, dict[str, Any]]:
    """Twenty's records of `obj` with these Whop keys, by key (soft-deleted ones with `deleted`)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 200):
        filter_: dict[str, Any] = {obj.key: {"in": keys[start : start + 200]}}
        if deleted:
            filter_ = {"and": [filter_, {"deletedAt": {"is": "NOT_NULL"}}]}
        for row in await twenty.find(obj, filter_, selection=selection or f"id {obj.key}"):
            assert row[obj.key] not in found, f"two {obj.plural} with {obj.key} {row[obj.key]}"
            found[row[obj.key]] = row
    return found


def person_key(whop: FakeWhop, member_id: str) -> str:
    """The Person's key: the Whop user, or the member of a buyer with no user (a business)."""
    member = whop.members[member_id]
    return member.user_id or member.id
