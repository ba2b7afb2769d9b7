"""End to end, as a user runs it: real processes on loopback, no in-process shortcuts."""

from __future__ import annotations

import contextlib
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


def _serve(module: str, *args: str, command: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Iterator[str]:
    """`python -m module [command] --port P args` on a free port, until the generator closes."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *command, "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=1) as http:  # one client for the polling: each new one costs CPU
            for _ in range(300):
                try:
                    http.get(url + "/healthz")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture
def twenty_url() -> Iterator[str]:
    yield from _serve("fakes.twenty", "--api-key", TWENTY_KEY, "--dialect", "2.x")


@pytest.fixture
def twenty_1x_url() -> Iterator[str]:
    yield from _serve("fakes.twenty", "--api-key", TWENTY_KEY, "--dialect", "1.x")


@pytest.fixture
def whop_url() -> Iterator[str]:
    yield from _serve(
        "fakes.whop",
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
        # These stand-ins set no rate limit, so the bridge need not pace itself to Twenty's 100 a
        # minute (a resumed backfill waited 39 s for its turns); the pacing is tested below, where
        # the stand-in enforces the limit (two serve processes and a sync).
        "TWENTY_REQUESTS_PER_MINUTE": "100000",
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

    # The stand-in holds every write once 60 more records are written: the kill lands part-way,
    # however fast or slow the machine.
    already = httpx.get(f"{twenty_url}/_fake/stats").json()["records_written"]
    httpx.post(f"{twenty_url}/_fake/hold", json={"after_records": already + 60})
    first = subprocess.Popen(
        [*cli, "sync", "--full"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120  # a hang guard only
    with httpx.Client() as http:
        while time.time() < deadline and http.get(f"{twenty_url}/_fake/stats").json()["held"] == 0:
            time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    httpx.post(f"{twenty_url}/_fake/hold", json={"release": True})
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


@pytest.mark.postgres
def test_two_serve_processes_and_a_sync_on_one_postgresql_stay_within_twentys_rate_limit(
    whop_url: str, postgres_url: str, tmp_path: Path
) -> None:
    """Replicas draw from one Twenty budget: the fake allows 100 requests a minute per workspace,
    two `serve` processes apply a burst of webhooks while a third process runs a full sync."""
    import json
    import uuid

    import psycopg
    from cryptography.fernet import Fernet

    from fakes.whop.signer import signed_headers

    secret = "ws_" + uuid.uuid4().hex
    with contextlib.ExitStack() as stack:
        twenty_url = stack.enter_context(
            contextlib.contextmanager(_serve)("fakes.twenty", "--api-key", TWENTY_KEY, "--rate-limit", "100")
        )
        env = _env(
            twenty_url,
            whop_url,
            tmp_path,
            DATABASE_URL=postgres_url,
            TWENTY_REQUESTS_PER_MINUTE="100",
            TWENTY_BATCH_SIZE="25",  # ~150 calls with the payment history: past one minute's burst
            WHOP_WEBHOOK_SECRET=secret,
            BRIDGE_SECRET_KEY=Fernet.generate_key().decode(),
            BRIDGE_ADMIN_PASSWORD="correct horse battery",
        )
        cli = [sys.executable, "-m", "bridge.cli"]
        subprocess.run([*cli, "provision"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
        serve = contextlib.contextmanager(_serve)
        replicas = [
            stack.enter_context(serve("bridge.cli", "--role", "all", command=("serve",), env=env)) for _ in "ab"
        ]
        sync = subprocess.Popen([*cli, "sync", "--full"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)

        headers = {"Authorization": f"Bearer {WHOP_KEY}", "Api-Version-Date": "2026-10-15-1"}
        page = httpx.get(
            f"{whop_url}/api/v1/memberships", params={"account_id": COMPANY, "first": 100}, headers=headers
        ).json()
        wanted: dict[str, str] = {}
        with httpx.Client(timeout=30) as http:
            for i, ms in enumerate(page["data"]):
                status = ("past_due", "canceled", "active")[i % 3]
                changed = http.post(f"{whop_url}/_fake/memberships/{ms['id']}", json={"status": status}).json()
                wanted[ms["id"]] = status.upper()
                envelope = {"id": f"msg_{uuid.uuid4().hex}", "type": "membership.updated", "data": changed}
                envelope.update(account_id=COMPANY, api_version_date="2026-10-15-1")
                body = json.dumps(envelope, separators=(",", ":")).encode()
                sent = {**signed_headers(secret, body, webhook_id=envelope["id"]), "content-type": "application/json"}
                answer = http.post(f"{replicas[i % 2]}/webhooks/whop", content=body, headers=sent)
                assert answer.status_code == 200, answer.text

        out, _ = sync.communicate(timeout=300)
        assert sync.returncode == 0, out
        dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        deadline = time.time() + 240
        while time.time() < deadline:
            with psycopg.connect(dsn) as db:
                counts = dict(db.execute("SELECT status, count(*) FROM webhook_inbox GROUP BY status").fetchall())
            if counts.get("applied", 0) + counts.get("ignored", 0) == len(wanted):
                break
            time.sleep(0.5)
        stats = httpx.get(f"{twenty_url}/_fake/stats").json()
        opportunities = _records(twenty_url, "opportunities")

    assert counts.get("applied", 0) + counts.get("ignored", 0) == len(wanted), counts
    assert stats["throttled"] == 0, f"Twenty refused {stats['throttled']} of {stats['data_calls']} calls"
    assert stats["data_calls"] > 100, "the test must need more than one minute's burst"
    keys = Counter(o["whopMembershipId"] for o in opportunities if o.get("whopMembershipId"))
    assert len(keys) == 360 and max(keys.values()) == 1, "every membership once"
    shown = {o["whopMembershipId"]: o["whopMembershipStatus"] for o in opportunities}
    assert {k: shown[k] for k in wanted} == wanted, "every event applied: Twenty shows Whop's state"


def _records(twenty_url: str, plural: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=twenty_url, headers={"Authorization": f"Bearer {TWENTY_KEY}"}) as http:
        while True:
            params: dict[str, Any] = {"limit": 200, **({"starting_after": cursor} if cursor else {})}
            answer = http.get(f"/rest/{plural}", params=params)
            if answer.status_code == 429:  # this reader shares the workspace's budget too
                time.sleep(1)
                continue
            body = answer.json()
            found += body["data"][plural]
            if not body["pageInfo"]["hasNextPage"]:
                return found
            cursor = body["pageInfo"]["endCursor"]
