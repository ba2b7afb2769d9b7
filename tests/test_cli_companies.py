"""`connect`, `connections`, `disconnect` and `webhooks recover` as a person runs them: the real
`whop-twenty-bridge` in a process, against the fake Whop and fake Twenty on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from fakes.twenty import FakeTwenty
from fakes.whop import FakeWhop, seed_company
from tests.loopback import serve

# Each test runs the command line several times, as separate processes against loopback stand-ins.
pytestmark = pytest.mark.slow

TWENTY_KEY = "cli-companies-twenty-key"
FIRST, SECOND = "biz_clifirst", "biz_clisecond"
PUBLIC = "https://bridge.example.com"


def bridge(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        env={k: v for k, v in {**os.environ, **env}.items() if v},
        capture_output=True,
        text=True,
        timeout=90,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


@pytest.fixture
def whop() -> Iterator[tuple[FakeWhop, str]]:
    fake = FakeWhop(api_key=None)
    seed_company(fake, company_id=FIRST, title="First Shop", members=4, products=1, seed=3, neighbor=False)
    seed_company(fake, company_id=SECOND, title="Second Shop", members=3, products=1, seed=4, neighbor=False)
    fake.hooks.retry_delays = ()
    with fake.serve() as url:
        yield fake, url


@pytest.fixture
def env(whop: tuple[FakeWhop, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve(FakeTwenty(dialect="2.x", api_key=TWENTY_KEY)) as twenty_url:
        yield {
            "WHOP_API_URL": whop[1],
            "TWENTY_URL": twenty_url,
            "TWENTY_API_KEY": TWENTY_KEY,
            "DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db",
            "TWENTY_REQUESTS_PER_MINUTE": "100000",  # the stand-in sets no limit: no pacing to wait out
            "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
            "BRIDGE_PUBLIC_URL": PUBLIC,
            "WHOP_API_KEY": "",  # not inherited from the developer's shell
            "WHOP_WEBHOOK_SECRET": "",
        }


def test_connect_reads_the_key_from_stdin_or_the_environment_and_registers_one_webhook_each(
    whop: tuple[FakeWhop, str], env: dict[str, str]
) -> None:
    fake, _ = whop
    first_key, second_key = fake.api_key_for(FIRST), fake.api_key_for(SECOND)

    piped = bridge("connect", stdin=first_key + "\n", **env)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert f"connected First Shop ({FIRST}) by API key" in piped.stdout
    assert "webhook: healthy" in piped.stdout
    assert first_key not in piped.stdout + piped.stderr

    from_env = bridge("connect", **{**env, "WHOP_API_KEY": second_key})
    assert from_env.returncode == 0, from_env.stdout + from_env.stderr
    assert f"connected Second Shop ({SECOND})" in from_env.stdout

    for company in (FIRST, SECOND):
        (hook,) = fake.webhooks_of(company)
        assert hook.url == f"{PUBLIC}/webhooks/whop"

    listed = bridge("connections", **env)
    assert listed.returncode == 0, listed.stderr
    assert FIRST in listed.stdout and SECOND in listed.stdout and "healthy" in listed.stdout

    # Connecting again keeps the single webhook.
    assert bridge("connect", stdin=first_key, **env).returncode == 0
    assert len(fake.webhooks_of(FIRST)) == 1


def test_connect_takes_no_key_on_the_command_line(whop: tuple[FakeWhop, str], env: dict[str, str]) -> None:
    fake, _ = whop
    key = fake.api_key_for(FIRST)
    proc = bridge("connect", key, **env)
    assert proc.returncode == 2  # a usage error: there is no such argument
    assert key not in proc.stdout + proc.stderr
    assert fake.webhooks_of(FIRST) == []


def test_disconnect_removes_one_company_and_its_webhook_and_sync_runs_the_rest(
    whop: tuple[FakeWhop, str], env: dict[str, str]
) -> None:
    fake, _ = whop
    for company in (FIRST, SECOND):
        assert bridge("connect", stdin=fake.api_key_for(company), **env).returncode == 0
    assert bridge("provision", **env).returncode == 0
    synced = bridge("sync", "--full", **env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert FIRST in synced.stdout and SECOND in synced.stdout  # each company in turn

    gone = bridge("disconnect", SECOND, **env)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "other companies and the records in Twenty are untouched" in gone.stdout
    assert fake.webhooks_of(SECOND) == [] and len(fake.webhooks_of(FIRST)) == 1
    listed = bridge("connections", **env).stdout
    assert FIRST in listed and SECOND not in listed

    again = bridge("disconnect", SECOND, **env)
    assert again.returncode == 1 and "error: no Whop connection for company" in again.stderr

    status = bridge("status", **env)
    assert "webhook: healthy" in status.stdout


def test_webhooks_recover_asks_whop_to_replay_for_each_company(whop: tuple[FakeWhop, str], env: dict[str, str]) -> None:
    fake, _ = whop
    assert bridge("connect", stdin=fake.api_key_for(FIRST), **env).returncode == 0
    proc = bridge("webhooks", "recover", "--since", "2026-12-01", **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{FIRST}: Whop will replay the deliveries sent after 2026-12-01 00:00:00 UTC" in proc.stdout
