"""Slow-client benchmark: the bridge's memory while many clients send slowly. Prints figures,
asserts nothing.

    .venv/bin/python bench/slow_clients.py [--clients 150] [--root DIR] [--only NAME]

Runs `serve --role web` on SQLite at its default limits, then, one scenario at a time, opens
`--clients` connections on loopback that each send slowly, and samples the server's resident
memory (VmRSS) every 0.1 s. Scenarios:

- declared: each declares a body just under 1 MiB (Content-Length) and sends it in 64 KiB
  pieces, one every 0.5 s (the attack of issue 13: 280 MB before the limits);
- chunked: the same bodies without a Content-Length (chunked), so the size is known only as it
  arrives;
- under-limit: bodies just under the limit, declared, sent a 16 KiB piece a second: the most a
  client can make the server hold, for as long as it may;
- headers: each sends its request headers a few bytes at a time, never finishing.

Every client sends at most for `--seconds` and stops when the server answers or closes. `--root`
runs another checkout's bridge (e.g. one from before the limits) with this script.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
JUST_UNDER_1_MIB = MIB - 1


@dataclass
class Scenario:
    name: str
    body: int  # bytes each client means to send
    piece: int  # bytes per write
    every: float  # seconds between writes
    chunked: bool = False
    headers_only: bool = False


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def client(port: int, scenario: Scenario, stop_at: float, outcomes: Counter[str]) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        outcomes["connect refused"] += 1
        return
    head = f"POST /webhooks/whop HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
    head += "transfer-encoding: chunked\r\n" if scenario.chunked else f"content-length: {scenario.body}\r\n"
    answer = asyncio.ensure_future(reader.read(200))
    try:
        if scenario.headers_only:
            for byte in head.encode():
                if answer.done() or time.monotonic() > stop_at:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.wait([answer], timeout=scenario.every)
        else:
            writer.write(head.encode() + b"\r\n")
            sent = 0
            while sent < scenario.body and not answer.done() and time.monotonic() < stop_at:
                size = min(scenario.piece, scenario.body - sent)
                data = b"a" * size
                writer.write(b"%x\r\n%s\r\n" % (size, data) if scenario.chunked else data)
                await writer.drain()
                sent += size
                await asyncio.wait([answer], timeout=scenario.every)
            if scenario.chunked and sent >= scenario.body and not answer.done():
                writer.write(b"0\r\n\r\n")
        await asyncio.wait([answer], timeout=max(0.0, stop_at - time.monotonic()))
        if not answer.done():
            outcomes["still open at the end"] += 1
        else:
            first = answer.result().split(b"\r\n", 1)[0].decode(errors="replace")
            outcomes[first.removeprefix("HTTP/1.1 ") or "closed by the server, no answer"] += 1
    except (ConnectionError, OSError):
        outcomes["reset by the server"] += 1
    finally:
        answer.cancel()
        writer.close()


async def run_scenario(pid: int, port: int, scenario: Scenario, clients: int, seconds: float) -> None:
    await asyncio.sleep(1.0)
    before = rss_mb(pid)
    peak = before
    outcomes: Counter[str] = Counter()
    stop_at = time.monotonic() + seconds
    started = time.monotonic()
    tasks = [asyncio.ensure_future(client(port, scenario, stop_at, outcomes)) for _ in range(clients)]
    while not all(t.done() for t in tasks):
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.1)
    took = time.monotonic() - started
    await asyncio.sleep(1.0)
    after = rss_mb(pid)
    ends = ", ".join(f"{n} {what}" for what, n in outcomes.most_common())
    print(
        f"{scenario.name:<12} RSS before {before:6.1f} MB, peak {peak:6.1f} MB (+{peak - before:5.1f}),"
        f" after {after:6.1f} MB; {took:4.1f} s; {ends}",
        flush=True,
    )


def scenarios(limit: int) -> list[Scenario]:
    return [
        Scenario("declared", JUST_UNDER_1_MIB, 64 * 1024, 0.5),
        Scenario("chunked", JUST_UNDER_1_MIB, 64 * 1024, 0.5, chunked=True),
        Scenario("under-limit", limit - 1, 16 * 1024, 1.0),
        Scenario("headers", 0, 0, 0.5, headers_only=True),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=40.0, help="how long each scenario's clients go on at most")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose bridge runs")
    parser.add_argument("--limit", type=int, default=262_144, help="the bridge's body limit (BRIDGE_MAX_BODY_BYTES)")
    parser.add_argument("--only", help="one scenario by name")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
            "BRIDGE_ADMIN_PASSWORD": "bench-admin-password-long",
            "WHOP_WEBHOOK_SECRET": "ws_bench_slow_clients_0123456789",
            "LOG_LEVEL": "ERROR",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", "--role", "web", "--port", str(port)],
            cwd=args.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            print(f"bridge from {args.root}: {args.clients} clients a scenario, each for at most {args.seconds:.0f} s")
            for scenario in scenarios(args.limit):
                if args.only in (None, scenario.name):
                    await run_scenario(proc.pid, port, scenario, args.clients, args.seconds)
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    asyncio.run(main())
