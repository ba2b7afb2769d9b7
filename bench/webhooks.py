"""Webhook benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/webhooks.py [--deliveries 3000] [--senders 50] [--samples 30] [--roles split|all]

The bridge runs as its own processes on loopback (SQLite, then PostgreSQL), next to the Twenty
and Whop stand-ins: by default `serve --role web` answering Whop and `serve --role worker`
applying the inbox; `--roles all` runs one `serve` doing both. This process plays Whop:

1. acknowledgements: `--senders` concurrent senders post `--deliveries` signed
   `membership.updated` deliveries; prints acks/s and p50/p99 latency;
2. acknowledgement → visible: one at a time, a membership changes at Whop, its webhook is
   delivered, and Twenty is polled until the Opportunity shows the change (Twenty idle).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backfill import COMPANY, TWENTY_KEY, WHOP_KEY, bridge_env, free_port, server  # noqa: E402
from fakes.whop.signer import signed_headers  # noqa: E402

SECRET = "ws_bench_" + secrets.token_hex(12)
PG_ADMIN = os.environ.get("BRIDGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
    )


def memberships(whop_url: str, limit: int) -> list[dict[str, Any]]:
    """Whop's JSON of the first `limit` memberships: what a real delivery carries as `data`."""
    headers = {"Authorization": f"Bearer {WHOP_KEY}", "Api-Version-Date": "2026-10-15-1"}
    found: list[dict[str, Any]] = []
    after = None
    while len(found) < limit:
        params: dict[str, Any] = {"account_id": COMPANY, "first": 100, **({"after": after} if after else {})}
        page = httpx.get(f"{whop_url}/api/v1/memberships", headers=headers, params=params, timeout=30).json()
        found += page["data"]
        if not page["page_info"]["has_next_page"]:
            break
        after = page["page_info"]["end_cursor"]
    return found[:limit]


def envelope(membership: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex,
        "api_version": "v1",
        "api_version_date": "2026-10-15-1",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "type": "membership.updated",
        "account_id": COMPANY,
        "data": membership,
    }


async def acks(
    bridge_url: str, records: list[dict[str, Any]], deliveries: int, senders: int, rate: float | None = None
) -> dict[str, float]:
    """`senders` keep-alive connections post pre-signed deliveries: as fast as the bridge answers
    (`rate` None), or together at a steady `rate` per second (each sender on its own clock).

    A raw HTTP/1.1 client on asyncio streams: httpx in one process tops out near 160 requests/s
    on this machine, which would measure the sender instead of the bridge.
    """
    host, port = bridge_url.removeprefix("http://").split(":")
    requests = []
    for i in range(deliveries):
        env = envelope(records[i % len(records)])
        body = json.dumps(env, separators=(",", ":")).encode()
        headers = {
            **signed_headers(SECRET, body, webhook_id=env["id"]),
            "content-type": "application/json",
            "content-length": str(len(body)),
            "host": f"{host}:{port}",
        }
        head = "POST /webhooks/whop HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        requests.append(head.encode() + body)
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(requests))

    async def sender(n: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        interval = senders / rate if rate else 0.0
        next_at = time.perf_counter() + interval * n / senders
        try:
            while queue:
                if interval:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += interval
                    if not queue:
                        break
                request = queue.pop()
                started = time.perf_counter()
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                errors += b" 200 " not in status_line
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender(n) for n in range(senders)))
    wall = time.perf_counter() - started
    return {
        "acks_per_s": deliveries / wall,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "errors": errors,
        "wall": wall,
    }


async def visible(
    bridge_url: str, whop_url: str, twenty_url: str, records: list[dict[str, Any]], samples: int
) -> list[float]:
    delays = []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(samples):
            membership = records[-(i + 1)]["id"]
            status = "past_due" if i % 2 == 0 else "active"
            changed = await client.post(f"{whop_url}/_fake/memberships/{membership}", json={"status": status})
            env = envelope(changed.json())
            body = json.dumps(env, separators=(",", ":")).encode()
            headers = {**signed_headers(SECRET, body, webhook_id=env["id"]), "content-type": "application/json"}
            response = await client.post(f"{bridge_url}/webhooks/whop", content=body, headers=headers)
            acked = time.perf_counter()
            assert response.status_code == 200, response.text
            want = status.upper()
            while time.perf_counter() - acked < 30:
                found = await client.get(
                    f"{twenty_url}/rest/opportunities",
                    params={"filter": f'whopMembershipId[eq]:"{membership}"', "limit": 1},
                    headers={"Authorization": f"Bearer {TWENTY_KEY}"},
                )
                rows = found.json()["data"]["opportunities"]
                if rows and rows[0].get("whopMembershipStatus") == want:
                    break
                await asyncio.sleep(0.02)
            delays.append(time.perf_counter() - acked)
    return delays


async def drain(bridge_url: str, limit: float) -> float | None:
    """Seconds until the inbox has nothing pending, processing or failed (read from /metrics)."""
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=10) as client:
        while time.perf_counter() - started < limit:
            text = (await client.get(f"{bridge_url}/metrics")).text
            waiting = 0.0
            for line in text.splitlines():
                for status in ("pending", "processing", "failed"):
                    if line.startswith(f'bridge_inbox_events{{status="{status}"}}'):
                        waiting += float(line.rsplit(" ", 1)[1])
            if waiting == 0:
                return time.perf_counter() - started
            await asyncio.sleep(0.2)
    return None


def postgres_database() -> str:
    import psycopg

    name = f"bridge_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN.replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def serve(env: dict[str, str], port: int, role: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "--port", str(port), "--role", role],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_healthy(url: str) -> None:
    for _ in range(300):
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)


async def run_one(label: str, database_url: str, twenty_url: str, whop_url: str, args: argparse.Namespace) -> None:
    bridge_port = free_port()
    bridge_url = f"http://127.0.0.1:{bridge_port}"
    env = bridge_env(
        twenty_url,
        whop_url,
        database_url,
        WHOP_WEBHOOK_SECRET=SECRET,
        BRIDGE_SECRET_KEY=Fernet.generate_key().decode(),
        BRIDGE_ADMIN_PASSWORD="bench-admin-password",  # serve refuses a weak one
        BRIDGE_PUBLIC_URL=bridge_url,
        TWENTY_REQUESTS_PER_MINUTE="100000",
        LOG_LEVEL="WARNING",
    )
    cli(env, "provision")
    cli(env, "sync", "--full")
    if args.roles == "split":  # the web role answers Whop; a worker process applies the inbox
        procs = [serve(env, bridge_port, "web"), serve(env, free_port(), "worker")]
    else:
        procs = [serve(env, bridge_port, "all")]
    try:
        wait_healthy(bridge_url)
        records = memberships(whop_url, 200)
        ack = await acks(bridge_url, records[:100], args.deliveries, args.senders)
        drained = await drain(bridge_url, args.settle)  # the worker applies the burst
        steady = await acks(bridge_url, records[:100], args.deliveries, args.senders, rate=args.rate)
        await drain(bridge_url, args.settle)  # Twenty idle again for the latency samples
        delays = await visible(bridge_url, whop_url, twenty_url, records[100:], args.samples)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    print(f"\n## {label}, serve --role {'web + --role worker' if args.roles == 'split' else 'all'}")
    if drained is None:
        print(f"the worker had not drained the first burst after {args.settle:.0f} s")
    else:
        print(f"the worker applied the first burst {drained:.1f} s after its last acknowledgement")
    print(
        f"as fast as it answers: {ack['acks_per_s']:.0f} acks/s over {args.deliveries} deliveries from"
        f" {args.senders} senders; p50 {ack['p50_ms']:.1f} ms, p99 {ack['p99_ms']:.1f} ms; non-200: {ack['errors']:.0f}"
    )
    print(
        f"at a steady {args.rate:.0f}/s from {args.senders} senders: {steady['acks_per_s']:.0f} acks/s;"
        f" p50 {steady['p50_ms']:.1f} ms, p99 {steady['p99_ms']:.1f} ms; non-200: {steady['errors']:.0f}"
    )
    print(
        f"acknowledgement → visible in Twenty ({len(delays)} samples): p50 {pct(delays, 50) * 1000:.0f} ms,"
        f" p95 {pct(delays, 95) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
        f" (mean {statistics.mean(delays) * 1000:.0f} ms)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--rate", type=float, default=300.0, help="deliveries per second for the steady run")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--settle", type=float, default=300.0, help="at most this long for the worker to drain")
    parser.add_argument(
        "--roles",
        choices=["split", "all"],
        default="split",
        help="split: `serve --role web` and `serve --role worker` as two processes; all: one `serve`",
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="run one database only")
    args = parser.parse_args()
    whop_args = [
        "--members",
        "300",
        "--memberships",
        "400",
        "--products",
        "5",
        "--company-id",
        COMPANY,
        "--api-key",
        WHOP_KEY,
        "--seed",
        "5",
    ]
    # Fresh stand-ins for each database, so one run's changes cannot satisfy the other's checks.
    if args.only != "postgres":
        await run_sqlite(whop_args, args)
    if args.only != "sqlite":
        await run_postgres(whop_args, args)


async def run_sqlite(whop_args: list[str], args: argparse.Namespace) -> None:
    with (
        server("fakes.whop", *whop_args) as whop_url,
        server("fakes.twenty", "--api-key", TWENTY_KEY, "--dialect", "2.x") as twenty_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        await run_one("SQLite", f"sqlite:///{tmp}/bench.db", twenty_url, whop_url, args)


async def run_postgres(whop_args: list[str], args: argparse.Namespace) -> None:
    pg = postgres_database()
    try:
        with (
            server("fakes.whop", *whop_args) as whop_url,
            server("fakes.twenty", "--api-key", TWENTY_KEY, "--dialect", "2.x") as twenty_url,
        ):
            await run_one("PostgreSQL", pg, twenty_url, whop_url, args)
    finally:
        drop_postgres_database(pg)


if __name__ == "__main__":
    asyncio.run(main())
