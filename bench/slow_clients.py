"""Slow-client benchmark: the bridge's memory while many clients send slowly, and whether others
are still served while one client hogs connections or guesses the password. Prints figures,
asserts nothing.

    .venv/bin/python bench/slow_clients.py [--clients 150] [--root DIR] [--only NAME]

Runs `serve --role web` on SQLite at its default limits, then, one scenario at a time, opens
`--clients` connections on loopback, each from an address of its own, that each send slowly, and
samples the server's resident memory (VmRSS) every 0.1 s. Scenarios:

- declared: each declares a body just under 1 MiB (Content-Length) and sends it in 64 KiB
  pieces, one every 0.5 s (the attack of issue 13: 280 MB before the limits);
- chunked: the same bodies without a Content-Length (chunked), so the size is known only as it
  arrives;
- under-limit: bodies just under the limit, declared, sent a 16 KiB piece a second: the most a
  client can make the server hold, for as long as it may;
- headers: each sends its request headers a few bytes at a time, never finishing.

Every client sends at most for `--seconds` and stops when the server answers or closes.

Scenarios of fair shares (loopback only; 127.x addresses act as distinct clients):

- starve: 120 slow-header connections from one address (127.0.0.2), each reopened as soon as the
  server cuts it, while a sender at 127.0.0.1 makes 53 signed deliveries over 30 s, each on a new
  connection; starve-many: the same 120 from 120 addresses (127.0.1.x);
- idle: 200 keep-alive connections from one address, each idle after one request and reopened
  when closed, while a new client makes a request every 0.25 s for 10 s; idle-many: from 200
  addresses;
- guesser: a wrong password 5 times a second from 127.0.0.2 for 155 s, and after 5 s the admin,
  each time in a new browser from 127.0.0.3, with the right one every 5 s until in (30 tries at
  most).

`--root` runs another checkout's bridge (e.g. one from before the limits) with this script.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fakes.whop.signer import signed_headers  # noqa: E402  (the tests' Standard Webhooks signer)

SECRET = "ws_bench_slow_clients_0123456789"
PASSWORD = "bench-admin-password-long"
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


async def client(port: int, address: str, scenario: Scenario, stop_at: float, outcomes: Counter[str]) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
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
    # One address each (127.0.1.x, …): many clients, not one client over its own cap.
    addresses = [f"127.0.{1 + n // 250}.{n % 250 + 1}" for n in range(clients)]
    tasks = [asyncio.ensure_future(client(port, address, scenario, stop_at, outcomes)) for address in addresses]
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


# Fair shares ------------------------------------------------------------------------------------


def transport(address: str) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(local_address=address)


async def slow_header_hog(port: int, address: str, stop: asyncio.Event, cuts: Counter[str]) -> None:
    """One connection that sends its headers a byte every 0.5 s, reopened as soon as it is cut."""
    head = f"POST /webhooks/whop HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: 10\r\n".encode()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
        except OSError:
            cuts["connect failed"] += 1
            await asyncio.sleep(0.01)
            continue
        answer = asyncio.ensure_future(reader.read(200))
        try:
            for byte in head:
                if answer.done() or stop.is_set():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.wait([answer], timeout=0.5)
            await asyncio.wait([answer, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            if answer.done():
                first = answer.result().split(b"\r\n", 1)[0].decode(errors="replace")
                cuts[first.removeprefix("HTTP/1.1 ") or "closed, no answer"] += 1
        except (ConnectionError, OSError):
            cuts["reset"] += 1
        finally:
            answer.cancel()
            writer.close()


async def idle_hog(port: int, address: str, stop: asyncio.Event, cuts: Counter[str]) -> None:
    """One keep-alive connection: a request, then idle until closed, then again."""
    request = f"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
        except OSError:
            cuts["connect failed"] += 1
            await asyncio.sleep(0.01)
            continue
        try:
            writer.write(request)
            answer = await reader.read(200)
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace").removeprefix("HTTP/1.1 ")
            cuts[status or "closed, no answer"] += 1
            if status.startswith("200"):
                closed = asyncio.ensure_future(reader.read(1))  # idle until the server closes it
                await asyncio.wait([closed, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
                closed.cancel()
        except (ConnectionError, OSError):
            cuts["reset"] += 1
        finally:
            writer.close()


def outcome(response: httpx.Response | BaseException) -> str:
    if isinstance(response, BaseException):
        return type(response).__name__
    return str(response.status_code)


def run_hogs(port: int, name: str, addresses: list[str], stop: EventType, results: Queue[Counter[str]]) -> None:
    """The hogs, in a process of their own, so their reconnecting does not slow the sender's loop."""

    async def hogs() -> Counter[str]:
        hog = slow_header_hog if name.startswith("starve") else idle_hog
        stopped = asyncio.Event()
        cuts: Counter[str] = Counter()
        tasks = [asyncio.ensure_future(hog(port, address, stopped, cuts)) for address in addresses]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        stopped.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return cuts

    results.put(asyncio.run(hogs()))


async def share_scenario(port: int, name: str) -> None:
    many = name.endswith("-many")
    hogs = 120 if name.startswith("starve") else 200
    addresses = [f"127.0.1.{n % 250 + 1}" for n in range(hogs)] if many else ["127.0.0.2"] * hogs
    stop = multiprocessing.Event()
    results: Queue[Counter[str]] = multiprocessing.Queue()
    process = multiprocessing.Process(target=run_hogs, args=(port, name, addresses, stop, results))
    process.start()
    await asyncio.sleep(3.0)  # the hogs are in place
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    if name.startswith("starve"):
        count, every, path = 53, 30.0 / 53, "/webhooks/whop"
    else:
        count, every, path = 40, 0.25, "/healthz"
    latencies: list[float] = []
    for n in range(count):
        await asyncio.sleep(max(0.0, started + n * every - time.monotonic()))
        sent_at = time.monotonic()
        async with httpx.AsyncClient(transport=transport("127.0.0.1"), timeout=10) as client:
            try:
                if path == "/healthz":
                    response: httpx.Response | BaseException = await client.get(f"http://127.0.0.1:{port}/healthz")
                else:
                    body = b'{"type":"membership.updated","data":{"id":"mem_bench%d"}}' % n
                    response = await client.post(
                        f"http://127.0.0.1:{port}/webhooks/whop", content=body, headers=signed_headers(SECRET, body)
                    )
            except httpx.HTTPError as exc:
                response = exc
        latencies.append(time.monotonic() - sent_at)
        outcomes[outcome(response)] += 1
    took = time.monotonic() - started
    stop.set()
    cuts = await asyncio.to_thread(results.get, True, 60)
    process.join(10)
    what = "signed deliveries" if path != "/healthz" else "new clients' requests"
    ends = ", ".join(f"{n} {status}" for status, n in outcomes.most_common())
    hogged = ", ".join(f"{n} {status}" for status, n in cuts.most_common(4))
    latencies.sort()
    print(
        f"{name:<12} {hogs} hogs from {len(set(addresses))} address(es); {count} {what} over {took:4.1f} s: {ends};"
        f" each took {latencies[len(latencies) // 2]:.2f} s (median), {latencies[-1]:.2f} s at most"
        f" (the hogs' connections ended: {hogged})",
        flush=True,
    )


async def guesser_scenario(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    stop = asyncio.Event()
    guesses: Counter[str] = Counter()

    async def login(client: httpx.AsyncClient, password: str) -> int:
        page = await client.get(f"{base}/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        answer = await client.post(f"{base}/login", data={"password": password, "csrf_token": token})
        return answer.status_code

    async def guesser() -> None:
        async with httpx.AsyncClient(transport=transport("127.0.0.2"), timeout=10) as client:
            next_at = time.monotonic()
            while not stop.is_set():
                guesses[str(await login(client, "not-the-password"))] += 1
                next_at += 0.2
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    task = asyncio.ensure_future(guesser())
    await asyncio.sleep(5.0)
    first = time.monotonic()
    tries: Counter[int] = Counter()
    got_in = None
    for n in range(30):
        await asyncio.sleep(max(0.0, first + 5.0 * n - time.monotonic()))
        async with httpx.AsyncClient(transport=transport("127.0.0.3"), timeout=10) as admin:
            status = await login(admin, PASSWORD)
        tries[status] += 1
        if status == 303:
            got_in = (n + 1, time.monotonic() - first)
            break
    # The guesser goes on for the whole 150 s either way, so its pace compares.
    await asyncio.sleep(max(0.0, first + 150.0 - time.monotonic()))
    stop.set()
    await task
    paced = ", ".join(f"{n} {status}" for status, n in sorted(guesses.items()))
    if got_in is None:
        admin = f"admin: {tries[429]}/{sum(tries.values())} tries 429 over 150 s"
    else:
        admin = f"admin in after {got_in[1]:.1f} s (try {got_in[0]})"
    print(f"guesser      {admin}; guesser over 155 s: {paced} (401: checked and wrong)", flush=True)


SHARE_SCENARIOS = ["starve", "starve-many", "idle", "idle-many", "guesser"]


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
            "BRIDGE_ADMIN_PASSWORD": PASSWORD,
            "WHOP_WEBHOOK_SECRET": SECRET,
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
            for name in SHARE_SCENARIOS:
                if args.only in (None, name):
                    await (guesser_scenario(port) if name == "guesser" else share_scenario(port, name))
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    asyncio.run(main())
