"""The command line as a person meets it: output, `--version`, dry runs that write nothing, and
one clear line (within seconds) when Whop or Twenty cannot be reached. Most tests run the real
`whop-twenty-bridge` in a process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from rich.console import Console

from bridge import cli
from bridge.sync.engine import SyncResult
from fakes.twenty import FakeTwenty
from tests.loopback import free_port, serve

TWENTY_KEY = "cli-twenty-key"


def test_the_sync_summary_reports_twenty_reads_and_writes_separately(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=200))
    result = SyncResult(run_id=3, status="succeeded", counts={"person": {"updated": 2}}, problems=[])
    result.twenty_calls, result.twenty_writes, result.whop_calls = 7, 5, 11

    cli.print_sync_summary(result, dry_run=False)

    assert "Twenty calls: 7 (5 writes, 2 reads); Whop calls: 11" in out.getvalue()


def bridge(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one `error: …` line on stderr and no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def start_up_seconds() -> float:
    """How long the command takes to start and exit on this machine now: seconds more on a busy
    one, which a bound on how soon a command gives up must not count against it."""
    started = time.monotonic()
    assert bridge("--version").returncode == 0
    return time.monotonic() - started


# A command that cannot reach Whop or Twenty gives up within this many seconds of starting
# (two quick retries, bridge/reach.py), where retrying with backoff would take minutes.
GIVES_UP_WITHIN = 8.0


@pytest.fixture
def twenty_url() -> Iterator[str]:
    with serve(FakeTwenty(dialect="2.x", api_key=TWENTY_KEY)) as url:
        yield url


def test_version_prints_the_installed_version() -> None:
    proc = bridge("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"whop-twenty-bridge, version {metadata.version('whop-twenty-bridge')}"


def test_provision_dry_run_prints_the_plan_and_creates_no_database(twenty_url: str, tmp_path: Path) -> None:
    database = tmp_path / "state" / "bridge.db"
    database.parent.mkdir()
    proc = bridge(
        "provision",
        "--dry-run",
        TWENTY_URL=twenty_url,
        TWENTY_API_KEY=TWENTY_KEY,
        DATABASE_URL=f"sqlite:///{database}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "would be made, nothing was changed" in proc.stdout
    assert list(database.parent.iterdir()) == []  # no file, so nothing migrated either


def test_replaying_unknown_webhook_ids_names_them_and_fails(tmp_path: Path) -> None:
    proc = bridge("webhooks", "replay", "12345", "nope", DATABASE_URL=f"sqlite:///{tmp_path}/bridge.db")
    line = one_error_line(proc)
    assert "12345, nope" in line and "webhooks list" in line
    assert "queued 0" in proc.stdout


def test_a_whop_that_refuses_connections_fails_the_sync_within_seconds_with_one_line(
    twenty_url: str, tmp_path: Path
) -> None:
    whop = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        "TWENTY_URL": twenty_url,
        "TWENTY_API_KEY": TWENTY_KEY,
        "WHOP_API_URL": whop,
        "WHOP_API_KEY": "whop-key",
        "WHOP_COMPANY_ID": "biz_cli",
        "DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db",
    }
    assert bridge("provision", **env).returncode == 0
    start_up = start_up_seconds()
    started = time.monotonic()
    line = one_error_line(bridge("sync", **env))
    assert time.monotonic() - started - start_up < GIVES_UP_WITHIN
    assert line == f"error: cannot reach Whop at {whop} (connection refused); check WHOP_API_URL and the network"


@pytest.mark.parametrize(
    ("url", "why"),
    [("http://127.0.0.1:{port}", "connection refused"), ("http://bridge-test-host.invalid", "host not found")],
    ids=["refused", "unknown-host"],
)
def test_a_twenty_that_cannot_be_reached_names_twenty_url_not_a_transport_class(
    url: str, why: str, tmp_path: Path
) -> None:
    twenty = url.format(port=free_port())
    env = {"TWENTY_URL": twenty, "TWENTY_API_KEY": TWENTY_KEY, "DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db"}
    env |= {"WHOP_API_KEY": "whop-key", "WHOP_COMPANY_ID": "biz_cli"}
    start_up = start_up_seconds()
    for command in (["provision"], ["provision", "--dry-run"], ["sync"]):
        started = time.monotonic()
        line = one_error_line(bridge(*command, **env))
        assert time.monotonic() - started - start_up < GIVES_UP_WITHIN
        assert line == f"error: cannot reach Twenty at {twenty} ({why}); check TWENTY_URL and the network"
