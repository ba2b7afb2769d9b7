"""End to end, as a user runs it: real processes on loopback, no in-process shortcuts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
TWENTY_KEY = "e2e-twenty-key"
WHOP_KEY = "e2e-whop-key"
COMPANY = "biz_e2e"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(module: str, *args: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def twenty_url() -> Iterator[str]:
    # 40 ms per call makes the backfill slow enough to be killed half-way.
    yield from _serve("tests.fakes.twenty", "--api-key", TWENTY_KEY, "--dialect", "2.x", "--latency", "0.04")


@pytest.fixture
def twenty_1x_url() -> Iterator[str]:
    yield from _serve("tests.fakes.twenty", "--api-key", TWENTY_KEY, "--dialect", "1.x")


@pytest.fixture
def whop_url() -> Iterator[str]:
    yield from _serve(
        "tests.fakes.whop",
        "--members",
        "300",
        "--memberships",
        "360",
        "--products",
        "3",
        "--company-id",
        COMPANY,
        "--api-key",
        WHOP_KEY,
        "--seed",
        "11",
    )


def _env(twenty_url: str, whop_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TWENTY_URL": twenty_url,
        "TWENTY_API_KEY": TWENTY_KEY,
        "WHOP_API_URL": whop_url,
        "WHOP_API_KEY": WHOP_KEY,
        "WHOP_COMPANY_ID": COMPANY,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bridge.db",
        **extra,
    }


def _people(twenty_url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=twenty_url, headers={"Authorization": f"Bearer {TWENTY_KEY}"}) as http:
        while True:
            params: dict[str, Any] = {"limit": 200, **({"starting_after": cursor} if cursor else {})}
            body = http.get("/rest/people", params=params).json()
            found += body["data"]["people"]
            if not body["pageInfo"]["hasNextPage"]:
                return found
            cursor = body["pageInfo"]["endCursor"]


def test_the_readme_run_command_works_end_to_end() -> None:
    """`scripts/demo --check`: stand-ins, a real `serve`, provisioning, a sync, a signed webhook applied."""
    proc = subprocess.run(
        [sys.executable, "scripts/demo.py", "--check", "--members", "15"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "webhook applied to Twenty" in proc.stdout
    assert '"ok": true' in proc.stdout


def test_a_sync_killed_with_sigkill_resumes_and_creates_no_duplicate(
    twenty_url: str, whop_url: str, tmp_path: Path
) -> None:
    env = _env(twenty_url, whop_url, tmp_path, TWENTY_BATCH_SIZE="20")
    cli = [sys.executable, "-m", "bridge.cli"]
    subprocess.run([*cli, "provision"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)

    first = subprocess.Popen(
        [*cli, "sync", "--full"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(_people(twenty_url)) < 60:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    written_before = len(_people(twenty_url))
    assert 0 < written_before < 300, "killed part-way through the people"

    again = subprocess.run([*cli, "sync", "--full"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed run" in again.stdout
    keys = Counter(p["whopUserId"] for p in _people(twenty_url) if p.get("whopUserId"))
    assert len(keys) == 300 and max(keys.values()) == 1, "every member once, none twice"


def test_on_twenty_1x_provision_and_full_sync_from_the_command_line_succeed(
    twenty_1x_url: str, whop_url: str, tmp_path: Path
) -> None:
    """The run a 1.x user reported failing: `provision`, then `sync --full`, then again (a no-op)."""
    env = _env(twenty_1x_url, whop_url, tmp_path)
    cli = [sys.executable, "-m", "bridge.cli"]
    subprocess.run([*cli, "provision"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)

    first = subprocess.run([*cli, "sync", "--full"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    again = subprocess.run([*cli, "sync", "--full"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert first.returncode == 0, first.stdout + first.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    people = [p for p in _people(twenty_1x_url) if p.get("whopUserId")]
    assert len(people) == 300 and len({p["whopUserId"] for p in people}) == 300
    assert "" in {p["whopUsername"] for p in people}, "buyers with no Whop username were written"
