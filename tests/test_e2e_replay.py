"""The bridge is stopped while Whop sends events; when `serve` starts again it asks Whop to replay
what it missed, and each event applies once, through the webhook inbox: the replay did it, not
the first reconciliation (30-90 s after the start), which writes no inbox rows.

Real processes and sockets: the fake Whop and fake Twenty on loopback, the CLI and `serve` as
the user runs them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from fakes.twenty import FakeTwenty
from fakes.whop import FakeWhop, seed_company
from tests.loopback import free_port, serve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TWENTY_KEY = "e2e-replay-twenty-key"
COMPANY = "biz_replaye2e"


def cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def whop() -> Iterator[tuple[FakeWhop, str]]:
    fake = FakeWhop(api_key=None)
    seed_company(fake, company_id=COMPANY, title="Replay Shop", members=8, products=1, seed=21, neighbor=False)
    fake.hooks.retry_delays = ()  # Whop's retries would also reach a bridge that came back
    with fake.serve() as url:
        yield fake, url


def opportunities(twenty_url: str) -> dict[str, dict[str, Any]]:
    with httpx.Client(base_url=twenty_url, headers={"Authorization": f"Bearer {TWENTY_KEY}"}) as http:
        body = http.get("/rest/opportunities", params={"limit": 200}).json()
    return {o["whopMembershipId"]: o for o in body["data"]["opportunities"]}


def test_events_sent_while_the_bridge_was_down_arrive_by_replay_at_start_and_apply_once(
    whop: tuple[FakeWhop, str], tmp_path: Path
) -> None:
    fake, whop_url = whop
    port = free_port()
    with serve(FakeTwenty(dialect="2.x", api_key=TWENTY_KEY)) as twenty_url:
        database = tmp_path / "bridge.db"
        env = {
            **os.environ,
            "WHOP_API_URL": whop_url,
            "TWENTY_URL": twenty_url,
            "TWENTY_API_KEY": TWENTY_KEY,
            "DATABASE_URL": f"sqlite:///{database}",
            "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
            "BRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "BRIDGE_ADMIN_PASSWORD": "a long enough e2e admin passphrase",
        }
        for name in ("WHOP_API_KEY", "WHOP_COMPANY_ID", "WHOP_WEBHOOK_SECRET"):
            env.pop(name, None)
        cli("connect", env=env, stdin=fake.api_key_for(COMPANY))
        cli("provision", env=env)
        cli("sync", "--full", env=env)
        (hook,) = fake.webhooks_of(COMPANY)
        assert hook.url == f"http://127.0.0.1:{port}/webhooks/whop"

        # The bridge is not running: Whop's deliveries are refused.
        changed = [ms.id for ms in fake.memberships.values() if ms.company_id == COMPANY][:4]
        for mem_id in changed:
            fake.update_membership(mem_id, cancel_at_period_end=True)
            (sent,) = asyncio.run(fake.emit(COMPANY, "membership.updated", mem_id))
            assert not sent.success
        assert all(not opportunities(twenty_url)[m]["whopCancelAtPeriodEnd"] for m in changed)

        bridge = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 240  # only so that a bridge that never applies them fails
            while not all(opportunities(twenty_url)[m]["whopCancelAtPeriodEnd"] for m in changed):
                assert bridge.poll() is None, bridge.stderr.read() if bridge.stderr else ""
                if time.monotonic() > deadline:
                    pytest.fail("the missed events were never applied")
                time.sleep(0.25)
        finally:
            bridge.terminate()
            bridge.wait(20)

    replays = [d for d in fake.webhook_deliveries(hook.id) if d.attempt == "replay"]
    assert len(replays) >= len(changed) and all(d.success for d in replays)
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT webhook_id, status FROM webhook_inbox").fetchall()
    assert len(rows) == len(changed) and {status for _, status in rows} == {"applied"}  # once each
    # Each change Twenty showed was applied from a replayed delivery (a reconciliation writes
    # no inbox row), so no clock decides whether the replay or the reconciliation did it.
    assert {webhook_id for webhook_id, _ in rows} == {d.message_id for d in replays}
