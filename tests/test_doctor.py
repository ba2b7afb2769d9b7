"""`whop-twenty-bridge doctor`: each check against the in-process fakes, and the command itself.

What must hold: a healthy setup is all ✓ with exit code 0; each broken piece is one clear line
that names the variable to fix (never its value), and exit code 1 when a required check fails;
an unreachable service is a line, not a traceback; no secret value is ever printed.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.fernet import Fernet
from rich.console import Console

from bridge import cli
from bridge.config import load_settings
from bridge.crypto import TokenBox
from bridge.doctor import (
    ADMIN,
    CHECKS,
    CONFIGURATION,
    DATABASE,
    FAIL,
    OK,
    PUBLIC_URL,
    SKIP,
    TWENTY_KEY,
    TWENTY_MODEL,
    TWENTY_PERMISSION,
    TWENTY_REACHABLE,
    TWENTY_RECORDS,
    WARN,
    WEBHOOK_CHECK,
    WHOP_ACCESS,
    WHOP_CONNECTION,
    Check,
    Checklist,
    Outcome,
    Report,
    Status,
    Step,
    _registered_webhooks,
    render_report,
    run_doctor,
)
from bridge.registration import WebhookState
from bridge.runtime import Transports
from bridge.store import connections
from bridge.store.db import create_engine
from bridge.store.migrate import migrate
from bridge.store.tables import connections as connections_table
from bridge.whop.oauth import WhopOAuth, code_challenge, new_code_verifier
from fakes.twenty import FakeTwenty
from fakes.whop import FakeWhop, seed_company
from tests.provisioned import provisioned_twenty
from tests.web.conftest import BRIDGE_URL as CALLBACK_BASE
from tests.web.conftest import authorization_code

TWENTY_URL = "http://twenty.test"
WHOP_URL = "http://whop.test"
PUBLIC = "https://bridge.example.com"
TWENTY_SECRET = "twenty-doctor-key-7f3a9c"
WHOP_SECRET = "whop-doctor-key-91bc04"
WEBHOOK_SECRET = "ws_doctor_webhook_secret_55e1"
ADMIN_SECRET = "admin-password-for-the-doctor"
CLIENT_ID = "app_doctortest"
CLIENT_SECRET = "whop-client-secret-for-the-doctor"
COMPANY = "biz_doctor"
TITLE = "Doctor Co"


@dataclass
class World:
    twenty: FakeTwenty
    whop: FakeWhop
    transports: Transports
    values: dict[str, Any] = field(default_factory=dict)

    async def doctor(self, *, drop: tuple[str, ...] = (), **overrides: Any) -> Report:
        values = {k: v for k, v in {**self.values, **overrides}.items() if k not in drop}
        return await run_doctor(lambda: load_settings(**values), transports=self.transports)


async def make_world(tmp_path: Path, dialect: str = "2.x", *, provisioned: bool = True) -> World:
    if provisioned:
        twenty = await provisioned_twenty(dialect, TWENTY_SECRET, PUBLIC)
    else:
        twenty = FakeTwenty(dialect=dialect, api_key=TWENTY_SECRET)
    whop = FakeWhop(
        api_key=WHOP_SECRET,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[f"{CALLBACK_BASE}/oauth/callback"],
    )
    seed_company(whop, company_id=COMPANY, title=TITLE, members=3, products=1)
    transports = Transports(twenty=httpx.ASGITransport(app=twenty), whop=httpx.ASGITransport(app=whop))
    database = f"sqlite:///{tmp_path}/bridge.db"
    await migrate(database)
    values = {
        "TWENTY_URL": TWENTY_URL,
        "TWENTY_API_KEY": TWENTY_SECRET,
        "WHOP_API_URL": WHOP_URL,
        "WHOP_API_KEY": WHOP_SECRET,
        "WHOP_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DATABASE_URL": database,
        "BRIDGE_PUBLIC_URL": PUBLIC,
        "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
        "BRIDGE_ADMIN_PASSWORD": ADMIN_SECRET,
    }
    twenty.reset_stats()
    return World(twenty, whop, transports, values)


@pytest.fixture
async def world(tmp_path: Path) -> World:
    return await make_world(tmp_path)


def text_of(report: Report) -> str:
    console = Console(file=io.StringIO(), width=400, color_system=None)
    render_report(report, console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def check(report: Report, name: str) -> Check:
    found = [c for c in report.checks if c.name == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def statuses(report: Report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def assert_no_secrets(text: str, *secrets: str) -> None:
    for secret in (TWENTY_SECRET, WHOP_SECRET, WEBHOOK_SECRET, ADMIN_SECRET, CLIENT_SECRET, *secrets):
        assert secret not in text, "a secret value was printed"


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# A healthy setup ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["2.x", "1.x"])
async def test_a_healthy_setup_is_all_green(tmp_path: Path, dialect: str) -> None:
    world = await make_world(tmp_path, dialect)
    report = await world.doctor()
    text = text_of(report)
    assert all(c.status == OK for c in report.checks), text
    assert report.exit_code == 0
    assert {
        CONFIGURATION,
        ADMIN,
        DATABASE,
        TWENTY_REACHABLE,
        TWENTY_KEY,
        TWENTY_MODEL,
        TWENTY_PERMISSION,
        TWENTY_RECORDS,
        WHOP_CONNECTION,
        WHOP_ACCESS,
        WEBHOOK_CHECK,
        PUBLIC_URL,
    } == set(statuses(report))
    assert f"speaks {dialect}" in check(report, TWENTY_KEY).detail
    # What this Twenty cannot have is said, not failed: 1.x has no timeline lines of the bridge's.
    assert ("timeline lines" in check(report, TWENTY_MODEL).detail) is (dialect == "1.x")
    assert f"{TITLE} ({COMPANY})" in check(report, WHOP_CONNECTION).detail
    assert "memberships" in check(report, WHOP_ACCESS).detail
    assert "✗" not in text and "✓ Twenty API key" in text
    assert_no_secrets(text)


async def test_the_doctor_changes_nothing_in_twenty(world: World) -> None:
    before = {name: len(world.twenty.records(name)) for name in ("people", "opportunities", "whopProducts")}
    await world.doctor()
    assert world.twenty.stats.data_writes == 0
    assert world.twenty.stats.records_written == 0
    # The permission probe is the only metadata mutation, and it names a field that does not exist.
    assert world.twenty.stats.operations["updateOneField"] == 1
    assert world.twenty.stats.metadata_mutations == 1
    assert {name: len(world.twenty.records(name)) for name in before} == before


# Twenty ---------------------------------------------------------------------------------------------


async def test_a_wrong_twenty_key_is_named_not_shown(world: World) -> None:
    wrong = "wrong-twenty-key-3e8d1f"
    report = await world.doctor(TWENTY_API_KEY=wrong)
    key = check(report, TWENTY_KEY)
    assert key.status == FAIL
    assert "TWENTY_API_KEY" in key.detail
    assert "API key" in key.fix
    for name in (TWENTY_MODEL, TWENTY_PERMISSION, TWENTY_RECORDS):
        assert check(report, name).status == SKIP
    assert check(report, TWENTY_REACHABLE).status == OK
    assert report.exit_code == 1
    text = text_of(report)
    assert "✗ Twenty API key" in text
    assert_no_secrets(text, wrong)


async def test_a_missing_twenty_key(world: World) -> None:
    report = await world.doctor(drop=("TWENTY_API_KEY",))
    assert check(report, TWENTY_KEY).status == FAIL
    assert "TWENTY_API_KEY is not set" in check(report, TWENTY_KEY).detail
    assert report.exit_code == 1


async def test_twenty_unreachable_on_a_closed_port(world: World, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    # The real network, not the fake: a refused connection must become a line.
    values = {**world.values, "TWENTY_URL": url}
    report = await run_doctor(lambda: load_settings(**values), transports=Transports(whop=world.transports.whop))
    reach = check(report, TWENTY_REACHABLE)
    assert reach.status == FAIL
    assert f"cannot reach {url}" in reach.detail
    assert "TWENTY_URL" in reach.fix
    for name in (TWENTY_KEY, TWENTY_MODEL, TWENTY_PERMISSION, TWENTY_RECORDS):
        assert check(report, name).status == SKIP
    # The rest is still checked.
    assert check(report, WHOP_CONNECTION).status == OK
    assert report.exit_code == 1


async def test_twenty_answering_503_is_unhealthy(world: World) -> None:
    world.twenty.down = True
    report = await world.doctor()
    assert check(report, TWENTY_REACHABLE).status == FAIL
    assert "503" in check(report, TWENTY_REACHABLE).detail
    assert report.exit_code == 1


async def test_an_unprovisioned_workspace(tmp_path: Path) -> None:
    world = await make_world(tmp_path, provisioned=False)
    report = await world.doctor()
    model = check(report, TWENTY_MODEL)
    assert model.status == FAIL
    assert "whopPayment" in model.detail and "provision" in model.fix  # the first missing object
    # The key may change the data model, so provisioning will work.
    assert check(report, TWENTY_PERMISSION).status == OK
    records = check(report, TWENTY_RECORDS)
    assert records.status == OK and "whopProducts" not in records.detail
    assert report.exit_code == 1


async def test_no_data_model_permission_after_provisioning_is_a_warning(world: World) -> None:
    world.twenty.data_model_permission = False
    report = await world.doctor()
    permission = check(report, TWENTY_PERMISSION)
    assert permission.status == WARN
    assert "data-model permission" in permission.detail
    assert report.exit_code == 0


async def test_no_data_model_permission_before_provisioning_fails(tmp_path: Path) -> None:
    world = await make_world(tmp_path, provisioned=False)
    world.twenty.data_model_permission = False
    report = await world.doctor()
    assert check(report, TWENTY_PERMISSION).status == FAIL
    assert "Data model" in check(report, TWENTY_PERMISSION).fix
    assert report.exit_code == 1


# Database ---------------------------------------------------------------------------------------------


async def test_a_database_not_created_yet_is_not_created_by_the_doctor(world: World, tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    report = await world.doctor(DATABASE_URL=f"sqlite:///{path}")
    database = check(report, DATABASE)
    assert database.status == WARN and "does not exist yet" in database.detail
    assert not path.exists()
    # Without a store the API key still identifies the company.
    assert check(report, WHOP_CONNECTION).status == OK
    assert report.exit_code == 0


async def test_a_database_in_a_missing_folder_fails(world: World, tmp_path: Path) -> None:
    report = await world.doctor(DATABASE_URL=f"sqlite:///{tmp_path}/nowhere/bridge.db")
    assert check(report, DATABASE).status == FAIL
    assert report.exit_code == 1


async def test_a_database_migrated_by_a_newer_bridge_fails(world: World) -> None:
    engine = create_engine(world.values["DATABASE_URL"])
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    await engine.dispose()
    report = await world.doctor()
    database = check(report, DATABASE)
    assert database.status == FAIL and "9999_from_the_future" in database.detail
    assert report.exit_code == 1


async def test_an_unreachable_postgres_hides_its_password(world: World, closed_port: int) -> None:
    password = "pg-password-8d2e61"
    report = await world.doctor(DATABASE_URL=f"postgresql://bridge:{password}@127.0.0.1:{closed_port}/whop_bridge")
    database = check(report, DATABASE)
    assert database.status == FAIL
    assert "cannot open postgresql://bridge:***@127.0.0.1" in database.detail
    assert_no_secrets(text_of(report), password)


# Whop ---------------------------------------------------------------------------------------------------


async def test_a_wrong_whop_key_is_named_not_shown(world: World) -> None:
    wrong = "wrong-whop-key-0b7e22"
    report = await world.doctor(WHOP_API_KEY=wrong)
    connection = check(report, WHOP_CONNECTION)
    assert connection.status == FAIL and "WHOP_API_KEY" in connection.detail
    assert check(report, WHOP_ACCESS).status == SKIP
    assert_no_secrets(text_of(report), wrong)


async def test_no_whop_connection_at_all(world: World) -> None:
    report = await world.doctor(drop=("WHOP_API_KEY",))
    connection = check(report, WHOP_CONNECTION)
    assert connection.status == FAIL
    assert "WHOP_API_KEY" in connection.detail and "WHOP_CLIENT_ID" in connection.fix
    report = await world.doctor(drop=("WHOP_API_KEY",), WHOP_CLIENT_ID=CLIENT_ID)
    assert "Connect Whop" in check(report, WHOP_CONNECTION).fix


async def test_a_company_id_that_is_not_the_keys(world: World) -> None:
    seed_company(world.whop, company_id="biz_other", title="Other Co", members=3, products=1)
    report = await world.doctor(WHOP_COMPANY_ID="biz_other")
    connection = check(report, WHOP_CONNECTION)
    assert connection.status == WARN and "biz_other" in connection.detail
    # The company API key may not read another company: the reads say so.
    assert check(report, WHOP_ACCESS).status == FAIL


async def connect_by_oauth(world: World) -> None:
    settings = load_settings(**world.values)
    # The consent helper answers on the web tests' callback address.
    callback = f"{CALLBACK_BASE}/oauth/callback"
    oauth = WhopOAuth(WHOP_URL, CLIENT_ID, CLIENT_SECRET, callback, transport=world.transports.whop)
    verifier = new_code_verifier()
    url = oauth.authorize_url(state="s", nonce="n", code_challenge=code_challenge(verifier))
    tokens = await oauth.exchange_code(await authorization_code(world.whop, url), verifier)
    engine = create_engine(settings.database_url)
    await connections.upsert_connection(
        engine,
        TokenBox(settings.fernet),
        company_id=COMPANY,
        company_title=TITLE,
        mode="oauth",
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scopes=tokens.scope,
        whop_user_id="user_owner",
    )
    await engine.dispose()


async def test_an_oauth_connection_is_checked_with_its_stored_token(world: World) -> None:
    await connect_by_oauth(world)
    report = await world.doctor(drop=("WHOP_API_KEY",), WHOP_CLIENT_ID=CLIENT_ID, WHOP_CLIENT_SECRET=CLIENT_SECRET)
    connection = check(report, WHOP_CONNECTION)
    assert connection.status == OK, text_of(report)
    assert connection.detail.startswith(f"OAuth: {TITLE} ({COMPANY}), connected; access token valid")
    assert check(report, WHOP_ACCESS).status in (OK, WARN)
    assert "can read products, members, payments, memberships" in check(report, WHOP_ACCESS).detail
    assert_no_secrets(text_of(report))


async def test_an_expired_oauth_token_is_not_refreshed_by_the_doctor(world: World) -> None:
    await connect_by_oauth(world)
    engine = create_engine(world.values["DATABASE_URL"])
    async with engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(minutes=5)
        await conn.execute(sa.update(connections_table).values(token_expires_at=past))
    await engine.dispose()
    world.whop.stats.reset()
    report = await world.doctor(drop=("WHOP_API_KEY",), WHOP_CLIENT_ID=CLIENT_ID, WHOP_CLIENT_SECRET=CLIENT_SECRET)
    assert check(report, WHOP_CONNECTION).status == OK
    assert "refreshed on next use" in check(report, WHOP_CONNECTION).detail
    assert "not probed live" in check(report, WHOP_ACCESS).detail
    # Refreshing would rotate the refresh token: the doctor leaves that to the sync.
    assert world.whop.stats.refreshes == 0 and world.whop.stats.api_calls == 0


async def test_an_oauth_connection_needing_reconnect(world: World) -> None:
    await connect_by_oauth(world)
    engine = create_engine(world.values["DATABASE_URL"])
    await connections.mark_needs_reconnect(engine, COMPANY, "invalid_grant")
    await engine.dispose()
    report = await world.doctor(drop=("WHOP_API_KEY",))
    connection = check(report, WHOP_CONNECTION)
    assert connection.status == FAIL and "reconnected" in connection.detail and "invalid_grant" in connection.detail
    assert "Reconnect" in connection.fix
    # With an API key the sync carries on with it: a warning, not a failure.
    report = await world.doctor()
    assert check(report, WHOP_CONNECTION).status == WARN
    assert "needs reconnecting" in check(report, WHOP_CONNECTION).detail


async def test_tokens_stored_under_another_key(world: World) -> None:
    await connect_by_oauth(world)
    report = await world.doctor(BRIDGE_SECRET_KEY=Fernet.generate_key().decode())
    connection = check(report, WHOP_CONNECTION)
    assert connection.status == FAIL and "BRIDGE_SECRET_KEY" in connection.detail


# Webhooks, URL, admin --------------------------------------------------------------------------------


async def test_a_missing_webhook_secret_is_reported(world: World) -> None:
    report = await world.doctor(drop=("WHOP_WEBHOOK_SECRET",))
    webhook = check(report, WEBHOOK_CHECK)
    assert webhook.status == FAIL
    assert "WHOP_WEBHOOK_SECRET is not set" in webhook.detail
    assert f"{PUBLIC}/webhooks/whop" in webhook.fix
    assert report.exit_code == 1
    assert "✗ Whop webhook secret" in text_of(report)


async def test_a_webhook_secret_of_another_shape_is_a_warning(world: World) -> None:
    odd = "whsec_not_from_whop_4d1c"
    report = await world.doctor(WHOP_WEBHOOK_SECRET=odd)
    assert check(report, WEBHOOK_CHECK).status == WARN
    assert report.exit_code == 0
    assert_no_secrets(text_of(report), odd)
    report = await world.doctor(WHOP_WEBHOOK_SECRET=f"{WEBHOOK_SECRET},ws_the_next_one_000")
    assert check(report, WEBHOOK_CHECK).status == OK and "rotation" in check(report, WEBHOOK_CHECK).detail


async def test_the_public_url(world: World) -> None:
    for url, status in (
        ("https://bridge.example.com", OK),
        ("http://127.0.0.1:8000", OK),
        ("http://localhost:8000", OK),
        ("http://bridge.example.com", WARN),
    ):
        report = await world.doctor(BRIDGE_PUBLIC_URL=url)
        assert check(report, PUBLIC_URL).status == status, url
    assert "https://" in check(report, PUBLIC_URL).fix


async def test_the_admin_page_settings(world: World) -> None:
    report = await world.doctor(drop=("BRIDGE_ADMIN_PASSWORD",))
    assert check(report, ADMIN).status == WARN and "BRIDGE_ADMIN_PASSWORD" in check(report, ADMIN).detail
    report = await world.doctor(BRIDGE_ADMIN_PASSWORD="short")
    assert check(report, ADMIN).status == WARN
    assert "short" not in check(report, ADMIN).detail.replace("shorter", "")
    # The rule serve applies at start, not only the length: long but of two characters is weak too.
    report = await world.doctor(BRIDGE_ADMIN_PASSWORD="abababababababab")
    assert check(report, ADMIN).status == WARN and "serve" in check(report, ADMIN).detail
    assert "abab" not in check(report, ADMIN).detail


async def test_a_bad_setting_is_a_line_not_a_crash() -> None:
    report = await run_doctor(lambda: load_settings(TWENTY_BATCH_SIZE=0))
    assert [c.name for c in report.checks] == [CONFIGURATION]
    assert check(report, CONFIGURATION).status == FAIL
    assert "TWENTY_BATCH_SIZE" in check(report, CONFIGURATION).detail
    assert report.exit_code == 1


# Declared needs ----------------------------------------------------------------------------------


def step(
    name: str, status: Status = OK, *, needs: tuple[str, ...] = (), after: tuple[str, ...] = ()
) -> Step[list[str]]:
    """A check that records, in the list it is given as context, that it ran."""

    async def run(ran: list[str]) -> Outcome:
        ran.append(name)
        return Outcome(status, f"{name} found {status}")

    return Step(name, run, needs=needs, after=after)


async def test_a_failed_check_skips_its_dependents_with_a_reason_naming_it() -> None:
    ran: list[str] = []
    checklist = Checklist(
        [step("store", FAIL), step("read", needs=("store",)), step("report", needs=("read",)), step("other")]
    )
    report = await checklist.run(ran)
    assert ran == ["store", "other"]
    assert statuses(report) == {"store": FAIL, "read": SKIP, "report": SKIP, "other": OK}
    assert check(report, "read").detail == "not checked: needs store, which failed"
    # Further down the chain the line still names the check to fix, not the skipped one in between.
    assert check(report, "report").detail == "not checked: needs store, which failed"
    assert report.exit_code == 1
    assert "– read: not checked: needs store, which failed" in text_of(report)


async def test_a_check_whose_needs_all_passed_runs() -> None:
    ran: list[str] = []
    report = await Checklist([step("a"), step("b", WARN), step("c", needs=("a", "b"))]).run(ran)
    assert ran == ["a", "b", "c"]
    assert check(report, "c").status == OK


async def test_a_check_that_skips_itself_skips_its_dependents() -> None:
    ran: list[str] = []
    report = await Checklist([step("a", SKIP), step("b", needs=("a",))]).run(ran)
    assert ran == ["a"]
    assert check(report, "b").detail == "not checked: needs a, which was not checked"
    assert report.exit_code == 0


async def test_a_check_that_raises_is_a_failed_line_and_its_dependents_skip() -> None:
    async def broken(_: list[str]) -> Outcome:
        raise RuntimeError("an answer nobody foresaw")

    ran: list[str] = []
    report = await Checklist([Step("broken", broken), step("next", needs=("broken",)), step("other")]).run(ran)
    assert check(report, "broken").status == FAIL
    assert "RuntimeError: an answer nobody foresaw" in check(report, "broken").detail
    assert check(report, "next").detail == "not checked: needs broken, which failed"
    assert ran == ["other"]


async def test_a_check_runs_after_what_it_needs_whatever_the_declared_order() -> None:
    checklist = Checklist([step("late", needs=("early",)), step("other"), step("early")])
    assert checklist.names == ["other", "early", "late"]
    ran: list[str] = []
    await checklist.run(ran)
    assert ran == ["other", "early", "late"]


async def test_after_orders_without_skipping_when_that_check_fails() -> None:
    ran: list[str] = []
    report = await Checklist([step("uses", after=("maybe",)), step("maybe", FAIL)]).run(ran)
    assert ran == ["maybe", "uses"]
    assert check(report, "uses").status == OK


def test_an_unknown_need_is_refused_when_the_checklist_is_defined() -> None:
    with pytest.raises(ValueError, match="'a' needs 'nowhere', which is not declared"):
        Checklist([step("a", needs=("nowhere",))])
    with pytest.raises(ValueError, match="'a' needs 'nowhere'"):
        Checklist([step("a", after=("nowhere",))])


def test_cyclic_needs_are_refused_when_the_checklist_is_defined() -> None:
    with pytest.raises(ValueError, match="need each other: a → b → c → a"):
        Checklist([step("a", needs=("b",)), step("b", needs=("c",)), step("c", after=("a",))])
    with pytest.raises(ValueError, match="need each other: a → a"):
        Checklist([step("a", needs=("a",))])
    # A check waiting on a cycle is not part of it; the message shows only the cycle.
    with pytest.raises(ValueError, match=r"need each other: a → b → a$"):
        Checklist([step("outside", needs=("a",)), step("a", needs=("b",)), step("b", needs=("a",))])


def test_two_checks_with_one_name_are_refused_when_the_checklist_is_defined() -> None:
    with pytest.raises(ValueError, match="two checks are named 'a'"):
        Checklist([step("a"), step("a")])


def test_the_doctor_runs_its_checks_in_the_printed_order() -> None:
    assert CHECKS.names == [
        CONFIGURATION,
        ADMIN,
        DATABASE,
        TWENTY_REACHABLE,
        TWENTY_KEY,
        TWENTY_MODEL,
        TWENTY_PERMISSION,
        TWENTY_RECORDS,
        WHOP_CONNECTION,
        WHOP_ACCESS,
        WEBHOOK_CHECK,
        PUBLIC_URL,
    ]


async def test_the_doctors_skipped_lines_name_the_failed_check_to_fix(world: World) -> None:
    report = await world.doctor(drop=("TWENTY_URL",), WHOP_API_KEY="wrong-whop-key-5a90d3")
    assert check(report, TWENTY_REACHABLE).status == FAIL
    for name in (TWENTY_KEY, TWENTY_MODEL, TWENTY_PERMISSION, TWENTY_RECORDS):
        assert check(report, name).detail == f"not checked: needs {TWENTY_REACHABLE}, which failed", name
    assert check(report, WHOP_CONNECTION).status == FAIL
    assert check(report, WHOP_ACCESS).detail == f"not checked: needs {WHOP_CONNECTION}, which failed"
    report = await world.doctor(drop=("TWENTY_API_KEY",))
    for name in (TWENTY_MODEL, TWENTY_PERMISSION, TWENTY_RECORDS):
        assert check(report, name).detail == f"not checked: needs {TWENTY_KEY}, which failed", name


async def test_a_failed_model_comparison_still_probes_permission_and_records(world: World, tmp_path: Path) -> None:
    (tmp_path / "schema" / "objects").mkdir(parents=True)
    (tmp_path / "schema" / "objects" / "broken.toml").write_text("[object\n")
    # `after`, not `needs`: the permission and records checks run without a plan.
    report = await world.doctor(BRIDGE_SCHEMA_DIR=str(tmp_path / "schema"))
    assert check(report, TWENTY_MODEL).status == FAIL
    assert "cannot compare the data model" in check(report, TWENTY_MODEL).detail
    assert check(report, TWENTY_PERMISSION).status == OK
    records = check(report, TWENTY_RECORDS)
    assert records.status == OK and "whopProducts" not in records.detail


# The command ---------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, closed_port: int, tmp_path: Path) -> Iterator[dict[str, str]]:
    monkeypatch.setattr("bridge.logs.configure_logging", lambda *a, **k: None)  # keep pytest's logging
    env = {
        "TWENTY_URL": f"http://127.0.0.1:{closed_port}",
        "TWENTY_API_KEY": TWENTY_SECRET,
        "WHOP_API_URL": f"http://127.0.0.1:{closed_port}",
        "WHOP_API_KEY": WHOP_SECRET,
        "WHOP_CLIENT_SECRET": CLIENT_SECRET,
        "WHOP_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "BRIDGE_ADMIN_PASSWORD": ADMIN_SECRET,
        "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "COLUMNS": "200",
    }
    yield env


def invoke(env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["doctor"], env=env)
    output = result.output + (getattr(result, "stderr", "") if result.stderr_bytes is not None else "")
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), output
    return result.exit_code, output


def test_the_command_reports_an_unreachable_twenty(cli_env: dict[str, str]) -> None:
    code, output = invoke(cli_env)
    assert code == 1
    assert "Traceback" not in output
    assert "✗ Twenty reachable: cannot reach http://127.0.0.1:" in output
    assert "– Twenty API key: not checked" in output
    assert "✗ Whop connection: cannot reach Whop" in output
    assert "problem(s) to fix" in output


def test_the_command_never_prints_a_secret(cli_env: dict[str, str], closed_port: int) -> None:
    password = "pg-password-for-the-cli-4411"
    key = cli_env["BRIDGE_SECRET_KEY"]
    env = {**cli_env, "DATABASE_URL": f"postgresql://bridge:{password}@127.0.0.1:{closed_port}/whop_bridge"}
    code, output = invoke(env)
    assert code == 1 and "✗ database" in output
    assert_no_secrets(output, password, key)
    # A malformed setting: one line naming it, and still no secret.
    code, output = invoke({**env, "TWENTY_BATCH_SIZE": "0"})
    assert code == 1 and "✗ configuration: TWENTY_BATCH_SIZE" in output
    assert_no_secrets(output, password, key)


def test_the_command_exits_0_when_only_warnings_remain(monkeypatch: pytest.MonkeyPatch) -> None:
    report = Report([Check(CONFIGURATION, OK, "fine"), Check(PUBLIC_URL, WARN, "http", "use https")])

    async def fake_run_doctor(*_args: Any, **_kwargs: Any) -> Report:
        return report

    monkeypatch.setattr("bridge.logs.configure_logging", lambda *a, **k: None)
    monkeypatch.setattr("bridge.doctor.run_doctor", fake_run_doctor)
    result = CliRunner().invoke(cli.main, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "! public URL: http" in result.output and "fix: use https" in result.output
    assert "all required checks passed, 1 warning(s)" in result.output


def _hook(
    company_id: str, *, webhook_id: str | None = "hook_1", enabled: bool | None = True, failures: int = 0
) -> WebhookState:
    return WebhookState(
        company_id=company_id,
        webhook_id=webhook_id,
        url="https://bridge.example/webhooks/whop",
        enabled=enabled if webhook_id else None,
        disabled_reason=None,
        failing_since=None,
        consecutive_failures=failures,
        checked_at=None,
        error=None if webhook_id else "the Whop connection may not manage webhooks",
    )


@pytest.mark.parametrize(
    ("hooks", "secret_set", "status", "fix"),
    [
        ([_hook("biz_a")], False, OK, ""),
        # A company without a registered webhook relies on WHOP_WEBHOOK_SECRET.
        (
            [_hook("biz_a"), _hook("biz_b", webhook_id=None)],
            False,
            FAIL,
            "biz_a: healthy; biz_b: the Whop connection may not manage webhooks",
        ),
        ([_hook("biz_a"), _hook("biz_b", webhook_id=None)], True, OK, ""),
        (
            [_hook("biz_a", enabled=False)],
            True,
            WARN,
            "whop-twenty-bridge webhooks enable biz_a (or Re-enable on the admin page)",
        ),
        (
            [_hook("biz_a", failures=3), _hook("biz_b", enabled=False)],
            False,
            WARN,
            "check that Whop can reach https://bridge.example/webhooks/whop, then whop-twenty-bridge webhooks "
            "recover --company biz_a; whop-twenty-bridge webhooks enable biz_b (or Re-enable on the admin page)",
        ),
    ],
)
def test_registered_webhooks_fail_unverifiable_and_say_how_to_fix_troubled_ones(
    hooks: list[WebhookState], secret_set: bool, status: str, fix: str
) -> None:
    outcome = _registered_webhooks(hooks, secret_set=secret_set)
    assert (outcome.status, outcome.fix) == (status, fix)
    if status == FAIL:
        assert outcome.detail == "deliveries of biz_b cannot be verified"
