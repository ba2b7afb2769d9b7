"""The command line as a person meets it: output, `--version`, dry runs that write nothing, and
one clear line (after two quick retries, not minutes of backoff) when Whop or Twenty cannot be
reached. Most tests run the real `whop-twenty-bridge` in a process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
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


# The command as a person runs it, with each `asyncio.sleep` it waited out noted in a file (the
# bridge's retry and rate-limit waits all go through it; a background task's sleep cancelled as
# the command ends is no wait): how long the bridge chose to wait is judged, never how long a
# busy machine took to start a process or resolve a name.
NOTING_WAITS = """
import asyncio, os, runpy
real_sleep = asyncio.sleep
async def noted(delay, result=None):
    slept = await real_sleep(delay, result)
    with open(os.environ["BRIDGE_TEST_WAITS_FILE"], "a") as waits:
        waits.write(f"{asyncio.current_task().get_name()} {delay}\\n")
    return slept
asyncio.sleep = noted
runpy.run_module("bridge.cli", run_name="__main__", alter_sys=True)
"""


def bridge_noting_waits(waits: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`bridge(*args)`, with every wait the process waited out appended to `waits`: a line each,
    the task that waited and the seconds."""
    return subprocess.run(
        [sys.executable, "-c", NOTING_WAITS, *args],
        env={**os.environ, **env, "BRIDGE_TEST_WAITS_FILE": str(waits)},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def waited(waits: Path) -> float:
    """The longest any one task of the process waited in all (tasks calling at once wait side by side)."""
    per_task: dict[str, float] = {}
    for line in waits.read_text().splitlines() if waits.exists() else []:
        task, seconds = line.rsplit(" ", 1)
        per_task[task] = per_task.get(task, 0.0) + float(seconds)
    return max(per_task.values(), default=0.0)


# A command that cannot reach Whop or Twenty has waited at most this long (in any one of its tasks)
# when it gives up: two quick retries (1 s, then 2 s at most, bridge/reach.py), where backoff
# would wait minutes.
GIVES_UP_AFTER_WAITING = 3.0


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


# `connections` as a person runs it, then which of the heavy libraries its process loaded.
LOADED_AFTER = """
import atexit, runpy, sys
atexit.register(lambda: print("loaded:", *sorted(m for m in ("alembic", "gql", "graphql") if m in sys.modules)))
runpy.run_module("bridge.cli", run_name="__main__", alter_sys=True)
"""


def test_a_command_on_an_up_to_date_store_loads_neither_alembic_nor_graphql(tmp_path: Path) -> None:
    # Every command starts by migrating its store and most send no GraphQL: the two libraries
    # were ~0.2 s of each command's start. The first start migrates (and needs Alembic).
    database = {"DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db"}
    for loaded in ("loaded: alembic", "loaded:"):
        proc = subprocess.run(
            [sys.executable, "-c", LOADED_AFTER, "connections"],
            env={**os.environ, **database},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "no Whop company is connected" in proc.stdout
        assert proc.stdout.splitlines()[-1].strip() == loaded


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
    waits = tmp_path / "waits"
    line = one_error_line(bridge_noting_waits(waits, "sync", **env))
    assert 0 < waited(waits) <= GIVES_UP_AFTER_WAITING
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
    for n, command in enumerate((["provision"], ["provision", "--dry-run"], ["sync"])):
        waits = tmp_path / f"waits-{n}"
        line = one_error_line(bridge_noting_waits(waits, *command, **env))
        assert 0 < waited(waits) <= GIVES_UP_AFTER_WAITING
        assert line == f"error: cannot reach Twenty at {twenty} ({why}); check TWENTY_URL and the network"
