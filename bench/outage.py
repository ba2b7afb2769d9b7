"""Outage benchmark: webhook events delivered while Twenty is down, then Twenty comes back.

    .venv/bin/python bench/outage.py                              # 300 events over a 20-minute outage
    .venv/bin/python bench/outage.py --outage 180 --events 100    # a scaled run (3 minutes)

Prints figures, asserts nothing. The bridge runs as its own processes on loopback at its default
settings (`serve --role web` answering Whop, `serve --role worker` applying the inbox; SQLite;
Twenty's 100 requests a minute shared through the store). The fake Whop runs as a process; the
fake Twenty runs in this process (on a thread, over uvicorn) so that it can be taken down and
brought back: down, every data-API call answers 503.

1. provision and a full sync, so Twenty holds every membership already;
2. Twenty goes down; `--events` memberships change at Whop, one by one, spread evenly over
   `--outage` seconds, and each change is delivered to the bridge as a signed webhook;
3. Twenty comes back; the inbox is watched until nothing in it is waiting (or `--settle` passes).

Reported: Twenty calls during the outage (the worker's probes), the most attempts and lost claims
any event spent, how long after recovery the inbox had nothing left waiting (with the floor the
rate budget sets for the calls it took), dead events, whether Twenty shows every change, and how
many times each membership's opportunity was sent to Twenty after recovery (twice = a duplicate).
The worker role's scheduler starts a reconciliation 30-90 s after it starts, as in production;
it may write some changes itself, and the events about them are then `ignored` ("Twenty already
has this version").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backfill import COMPANY, TWENTY_KEY, WHOP_KEY, bridge_env, free_port, server  # noqa: E402
from fakes.twenty import FakeTwenty  # noqa: E402
from fakes.whop.signer import signed_headers  # noqa: E402

SECRET = "ws_bench_" + secrets.token_hex(12)
WHOP_HEADERS = {"Authorization": f"Bearer {WHOP_KEY}", "Api-Version-Date": "2026-10-15-1"}
WAITING = ("pending", "processing", "failed")

Message = MutableMapping[str, Any]


class CountingTwenty:
    """The fake Twenty, counting per membership the opportunities sent in upserts it accepted."""

    def __init__(self, fake: FakeTwenty) -> None:
        self.fake = fake
        self.sent: Counter[str] = Counter()
        self.counting = False

    async def __call__(
        self, scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http" or scope["path"] != "/graphql" or not self.counting:
            await self.fake(scope, receive, send)
            return
        asked: list[bytes] = []
        answered: list[bytes] = []

        async def receive_body() -> Message:
            message = await receive()
            asked.append(message.get("body", b""))
            return message

        async def send_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                answered.append(message.get("body", b""))
            await send(message)

        await self.fake(scope, receive_body, send_body)
        try:
            request, answer = json.loads(b"".join(asked)), json.loads(b"".join(answered))
        except ValueError:
            return
        if "createOpportunities" in str(request.get("query")) and answer.get("data") and not answer.get("errors"):
            for record in (request.get("variables") or {}).get("data") or []:
                self.sent[str(record.get("whopMembershipId"))] += 1


@contextmanager
def twenty_on_a_thread(app: CountingTwenty) -> Iterator[str]:
    """The fake Twenty on uvicorn in this process, so it can be taken down from here."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="fake-twenty", daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(30)


def cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")


def serve(env: dict[str, str], port: int, role: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", "--port", str(port), "--role", role],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_healthy(url: str) -> None:
    for _ in range(600):
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def membership_ids(whop_url: str, limit: int) -> list[str]:
    found: list[str] = []
    after = None
    while len(found) < limit:
        params: dict[str, Any] = {"account_id": COMPANY, "first": 100, **({"after": after} if after else {})}
        page = httpx.get(f"{whop_url}/api/v1/memberships", headers=WHOP_HEADERS, params=params, timeout=30).json()
        found += [m["id"] for m in page["data"]]
        if not page["page_info"]["has_next_page"]:
            break
        after = page["page_info"]["end_cursor"]
    return found[:limit]


class Inbox:
    """The bridge's inbox, read straight from its SQLite file (read-only)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str) -> list[Any]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute(sql).fetchall()

    def snapshot(self) -> dict[str, Any]:
        counts = dict(self._query("SELECT status, count(*) FROM webhook_inbox GROUP BY status"))
        # A claim in progress counts as an attempt until its pass ends: only settled rows tell.
        most = self._query("SELECT max(attempts), max(lost_claims) FROM webhook_inbox WHERE status != 'processing'")
        return {"counts": counts, "max_attempts": most[0][0] or 0, "max_lost_claims": most[0][1] or 0}

    def delays(self) -> list[float]:
        """Seconds from arrival to done (applied or ignored), per event."""
        rows = self._query("SELECT received_at, processed_at FROM webhook_inbox WHERE status IN ('applied', 'ignored')")
        return [_seconds(done) - _seconds(got) for got, done in rows if got and done]


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(str(stamp)).timestamp()


async def deliver(
    bridge_url: str, whop_url: str, ids: list[str], over: float, sent: list[float], expected: dict[str, str]
) -> int:
    """Change each membership at Whop and deliver the change, spread evenly over `over` seconds."""
    refused = 0
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        for n, membership in enumerate(ids):
            await asyncio.sleep(max(0.0, started + over * n / len(ids) - time.monotonic()))
            status = "past_due" if n % 2 == 0 else "canceled"
            changed = await client.post(f"{whop_url}/_fake/memberships/{membership}", json={"status": status})
            expected[membership] = status.upper()
            envelope = {
                "id": "msg_" + uuid.uuid4().hex,
                "api_version": "v1",
                "api_version_date": "2026-10-15-1",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "type": "membership.updated",
                "account_id": COMPANY,
                "data": changed.json(),
            }
            body = json.dumps(envelope, separators=(",", ":")).encode()
            headers = {**signed_headers(SECRET, body, webhook_id=envelope["id"]), "content-type": "application/json"}
            answer = await client.post(f"{bridge_url}/webhooks/whop", content=body, headers=headers)
            refused += answer.status_code != 200
            sent.append(time.monotonic())
    return refused


async def run(args: argparse.Namespace) -> None:
    twenty = CountingTwenty(FakeTwenty(dialect="2.x", api_key=TWENTY_KEY, rate_limit_per_minute=args.rpm))
    whop_args = ["--members", str(args.events), "--memberships", str(args.events), "--products", "5"]
    whop_args += ["--company-id", COMPANY, "--api-key", WHOP_KEY, "--seed", "13"]
    with (
        server("fakes.whop", *whop_args) as whop_url,
        twenty_on_a_thread(twenty) as twenty_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        db = Path(tmp) / "bridge.db"
        bridge_port = free_port()
        bridge_url = f"http://127.0.0.1:{bridge_port}"
        env = bridge_env(
            twenty_url,
            whop_url,
            f"sqlite:///{db}",
            WHOP_WEBHOOK_SECRET=SECRET,
            BRIDGE_SECRET_KEY=Fernet.generate_key().decode(),
            BRIDGE_ADMIN_PASSWORD="bench-" + secrets.token_hex(8),
            BRIDGE_PUBLIC_URL=bridge_url,
            TWENTY_REQUESTS_PER_MINUTE=str(args.rpm),
            LOG_LEVEL="INFO" if args.log else "WARNING",
        )
        started = time.monotonic()
        cli(env, "provision")
        cli(env, "sync", "--full")
        print(f"provisioned and synced {args.events} memberships in {time.monotonic() - started:.0f} s", flush=True)
        log = Path(tmp) / "serve.log"
        procs = [serve(env, bridge_port, "web", log), serve(env, free_port(), "worker", log)]
        try:
            wait_healthy(bridge_url)
            await asyncio.sleep(2)  # the worker's first poll
            await outage(args, twenty, bridge_url, whop_url, Inbox(db))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)
        if args.log:
            lines = [line for line in log.read_text().splitlines() if "retrying in" not in line]
            print("\n".join(lines[-60:]))


async def outage(
    args: argparse.Namespace, twenty: CountingTwenty, bridge_url: str, whop_url: str, inbox: Inbox
) -> None:
    fake = twenty.fake
    ids = membership_ids(whop_url, args.events)
    fake.down = True
    fake.reset_stats()
    down_at = time.monotonic()
    sent: list[float] = []
    expected: dict[str, str] = {}
    sender = asyncio.create_task(deliver(bridge_url, whop_url, ids, args.outage, sent, expected))
    worst = {"max_attempts": 0, "max_lost_claims": 0}

    def watch() -> dict[str, Any]:
        seen = inbox.snapshot()
        for key in worst:
            worst[key] = max(worst[key], seen[key])
        return seen

    while time.monotonic() - down_at < args.outage:
        await asyncio.sleep(5)
        seen = watch()
        if args.verbose:
            print(f"  {time.monotonic() - down_at:6.0f} s down: {seen}", flush=True)
    refused = await sender
    at_recovery = dict(worst)
    during = fake.stats.data_calls
    fake.reset_stats()
    twenty.counting = True
    fake.down = False
    up_at = time.monotonic()
    done_at = None
    while time.monotonic() - up_at < args.settle:
        seen = watch()
        if not any(seen["counts"].get(status, 0) for status in WAITING):
            done_at = time.monotonic()
            break
        await asyncio.sleep(0.5)
    seen = watch()
    calls = fake.stats.data_calls
    floor = max(0.0, calls - args.rpm * 0.95) * 60 / args.rpm  # what the budget's burst does not cover
    opportunities = [o for o in fake.records("opportunities") if not o.get("deletedAt")]
    shown = {o["whopMembershipId"]: o.get("whopMembershipStatus") for o in opportunities}
    wrong = [m for m, status in expected.items() if shown.get(m) != status]
    copies = Counter(o["whopMembershipId"] for o in opportunities)
    counts = seen["counts"]

    print(f"\n## {args.events} events delivered over a {args.outage / 60:.1f}-minute Twenty outage")
    print(f"deliveries the bridge did not accept: {refused}; the last one {sent[-1] - down_at:.0f} s into the outage")
    print(
        f"during the outage: {during} Twenty data calls ({during / (args.outage / 60):.1f} a minute);"
        f" most attempts any event had spent when Twenty came back: {at_recovery['max_attempts']};"
        f" most lost claims: {at_recovery['max_lost_claims']}"
    )
    if done_at is None:
        print(f"NOT drained {args.settle:.0f} s after recovery: {counts}")
    else:
        print(
            f"after recovery: nothing left waiting {done_at - up_at:.1f} s after Twenty came back, with {calls}"
            f" Twenty calls in all (at {args.rpm}/min, beyond the budget's burst they need {floor:.1f} s)"
        )
    print(
        f"inbox: applied {counts.get('applied', 0)}, ignored {counts.get('ignored', 0)} (Twenty already had"
        f" that version), dead {counts.get('dead', 0)}, still waiting {sum(counts.get(s, 0) for s in WAITING)};"
        f" most attempts in the end: {worst['max_attempts']} (the claim that applied counts as one)"
    )
    twice = sum(1 for n in twenty.sent.values() if n > 1)
    print(
        f"Twenty shows {len(expected) - len(wrong)} of {len(expected)} changes; after recovery"
        f" {sum(twenty.sent.values())} opportunities were sent for {len(twenty.sent)} memberships, {twice} of them"
        f" more than once; memberships with two opportunities: {sum(1 for n in copies.values() if n > 1)}"
    )
    delays = inbox.delays()
    if delays:
        print(f"arrival → done: median {statistics.median(delays):.0f} s, max {max(delays):.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300, help="memberships changed, one webhook each")
    parser.add_argument("--outage", type=float, default=1200.0, help="seconds Twenty is down")
    parser.add_argument("--settle", type=float, default=900.0, help="at most this long to wait after recovery")
    parser.add_argument("--rpm", type=int, default=100, help="Twenty's requests a minute (fake and bridge)")
    parser.add_argument("--verbose", action="store_true", help="print the inbox every 5 s of the outage")
    parser.add_argument("--log", action="store_true", help="print the end of the bridge's log (INFO)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
