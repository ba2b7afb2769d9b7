"""Backfill benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/backfill.py                       # 10,000 memberships / 8,000 members / 20 products
    .venv/bin/python bench/backfill.py --members 100000 --memberships 100000 --kill-half
    .venv/bin/python bench/backfill.py --members 800 --memberships 1000 --products 5   # a quick look

The fake Twenty and fake Whop run as separate uvicorn processes on loopback (so the RSS printed
is the bridge's own), the bridge at its default settings (but Whop at 50 requests a second;
`--whop-rps 8` is the bridge's own default). By default the fake Twenty answers as slowly as a
real Twenty 2.21 did on this machine (`--timing real`, fitted by `bench/live_backfill.py
--calibrate`: creates ≈ 9 ms a record, updates ≈ 28 ms, a keyed read ≈ 0.06 s, one call at a
time) and allows 100 requests a minute, so the times predict what a user sees; each run prints
the floor those limits set beside the time it took.

1. the backfill, with the bridge's RSS at 10%, 50% and 100% of the records;
2. a reconciliation with nothing changed (goal: zero Twenty writes);
3. with `--kill-half`: a backfill as `whop-twenty-bridge sync --full` killed with SIGKILL half
   way, then run again: the records Twenty wrote against the records there are;
4. with `--naive`: one record per call on a 10% sample, projected to the full size.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.config import Settings, load_settings  # noqa: E402
from bridge.runtime import Runtime, Transports  # noqa: E402
from bridge.services import provision_workspace, run_sync  # noqa: E402
from bridge.sync.engine import READ_AHEAD_BATCHES  # noqa: E402
from bridge.whop.auth import StaticToken  # noqa: E402
from bridge.whop.client import WhopClient  # noqa: E402

TWENTY_KEY = "bench-twenty-key"
WHOP_KEY = "bench-whop-key"
COMPANY = "biz_bench"
TWENTY_BURST = 100  # Twenty's bucket holds a minute's worth of requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(module: str, *args: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600  # seeding 100,000 members takes a while
        while time.time() < deadline:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"{module} did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def rss_mb() -> float:
    """This process's resident memory now (Linux), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bridge_settings(twenty_url: str, whop_url: str, db: str, **extra: Any) -> Settings:
    """The bridge at its defaults (batch 200, 100 requests a minute), pointed at the stand-ins."""
    values: dict[str, Any] = {"WHOP_REQUESTS_PER_SECOND": 50, **extra}
    return load_settings(
        TWENTY_URL=twenty_url,
        TWENTY_API_KEY=TWENTY_KEY,
        WHOP_API_URL=whop_url,
        WHOP_API_KEY=WHOP_KEY,
        WHOP_COMPANY_ID=COMPANY,
        DATABASE_URL=f"sqlite:///{db}",
        **values,
    )


class RssMarks:
    """The bridge's RSS as the run goes (sampled at each progress report, at most once a
    percent), then read at 10%, 50% and 100% of the records the run ended with (the number of
    payments is not known before)."""

    def __init__(self) -> None:
        self.samples: list[tuple[int, float]] = []  # (records done, RSS in MB)

    def progress(self, _obj: str, counts: dict[str, dict[str, int]]) -> None:
        done = sum(v for obj, c in counts.items() if obj != "payment" for k, v in c.items() if k in DONE_OUTCOMES)
        if not self.samples or done - self.samples[-1][0] >= max(1, self.samples[-1][0] // 100):
            self.samples.append((done, rss_mb()))

    def marks(self) -> dict[int, float]:
        if not self.samples:
            return {}
        total = self.samples[-1][0]
        return {mark: next(mb for done, mb in self.samples if done * 100 >= mark * total) for mark in (10, 50, 100)}


DONE_OUTCOMES = ("created", "updated", "unchanged", "skipped", "failed")


async def one_run(settings: Settings, *, kind: str = "full") -> dict[str, Any]:
    marks = RssMarks()
    assert settings.twenty_url is not None
    overrun = twenty_stats(settings.twenty_url)["model_overrun_seconds"]
    modelled = twenty_modelled(settings.twenty_url)
    from bench.live_backfill import Recorded, Recorder

    recorded = Recorded()
    transports = Transports(
        twenty=Recorder(httpx.AsyncHTTPTransport(), "twenty", recorded),
        whop=Recorder(httpx.AsyncHTTPTransport(), "whop", recorded),
    )
    started, cpu = time.perf_counter(), time.process_time()
    async with await Runtime.open(settings, transports=transports) as runtime:
        recorded.t0 = started
        result = await run_sync(runtime, kind=kind, progress=marks.progress)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    records = {
        obj: sum(v for k, v in c.items() if k in DONE_OUTCOMES) for obj, c in result.counts.items() if obj != "payment"
    }
    written = {obj: c.get("created", 0) + c.get("updated", 0) for obj, c in result.counts.items() if obj != "payment"}
    written["timeline"] = result.counts.get("timeline", {}).get("written", 0)  # lines: upserts only
    overrun = twenty_stats(settings.twenty_url)["model_overrun_seconds"] - overrun
    modelled = {k: v - modelled[k] for k, v in twenty_modelled(settings.twenty_url).items()}
    return {
        "wall": wall,
        "cpu": cpu,
        "result": result,
        "records": records,
        "written": written,
        "rss": marks.marks(),
        "overrun": overrun,
        "modelled": modelled,
        "recorded": recorded,
    }


def minimum_calls(written: dict[str, int], batch: int) -> int:
    """New records: one upsert per batch and one read (by key, so people's edits and e-mails
    are respected) per `READ_AHEAD_BATCHES + 1` batches, per object. Timeline lines need no
    read (their ids are derived): one upsert per batch."""
    ahead = READ_AHEAD_BATCHES + 1
    lines = written.get("timeline", 0)
    records = sum(
        math.ceil(n / batch) + math.ceil(n / (batch * ahead)) for o, n in written.items() if n and o != "timeline"
    )
    return records + math.ceil(lines / batch)


def predicted_floor(
    reads: int, writes: int, modelled: dict[str, Any], rpm: int | None, *, serial: bool = True
) -> float:
    """The least wall time Twenty's limits allow for these calls.

    - No call starts before the rate limit lets it: Twenty's bucket holds `TWENTY_BURST`
      calls, full at the start, and refills at `rpm` a minute.
    - Each call takes the server's time (the fake's timing model: what it charged, on average,
      for a read and for a write in this run; nothing with `--timing none`).
    - Upserts go one at a time: one writer per object, and an object's records wait for the
      records they link to. A batch's keyed read must be answered before its upsert starts;
      it may run while the previous upsert is in flight, unless the server answers one call
      at a time (`serial`, as a real Twenty does), when it waits for that upsert.
    """
    read_time = modelled["read_seconds"] / modelled["reads"] if modelled.get("reads") else 0.0
    write_time = modelled["write_seconds"] / modelled["writes"] if modelled.get("writes") else 0.0

    def allowed(call: int) -> float:  # when the rate limit lets the call-th call (0-based) start
        return max(0.0, call + 1 - TWENTY_BURST) * 60 / rpm if rpm else 0.0

    call = 0
    previous_start = end = 0.0  # the last upsert's start and end
    for batch in range(writes):
        read_done = 0.0
        if batch < reads:
            # Asked once the upsert before it is on its way; served after it by a serial server.
            start = max(allowed(call), end if serial else previous_start)
            read_done = start + read_time
            call += 1
        previous_start = max(allowed(call), end, read_done)
        end = previous_start + write_time
        call += 1
    for _ in range(reads - writes):  # reads beyond one a batch (ids a short answer left out)
        end = max(allowed(call), end) + read_time
        call += 1
    return end


async def provision(twenty_url: str, db: str) -> None:
    settings = load_settings(TWENTY_URL=twenty_url, TWENTY_API_KEY=TWENTY_KEY, DATABASE_URL=f"sqlite:///{db}")
    async with await Runtime.open(settings) as runtime:
        await provision_workspace(runtime)


def report(title: str, run: dict[str, Any], *, batch: int, rpm: int | None) -> None:
    r = run["result"]
    minimum = minimum_calls(run["written"], batch)
    reads = r.twenty_calls - r.twenty_writes
    print(f"\n## {title}")
    print(f"records: {run['records']}  written: {run['written']}  status: {r.status}  problems: {len(r.problems)}")
    # Grouped by what went wrong, not by which record (e-mail addresses and Whop ids left out).
    kinds = Counter(
        f"{p['object']} {p['kind']}: " + re.sub(r"\S+@\S+|\b[a-z]+_[A-Za-z0-9]{6,}\b", "…", p["reason"])[:70]
        for p in r.problems
    )
    for what, n in kinds.most_common(5):
        print(f"  {n} × {what}")
    over = f"  ({(r.twenty_calls / minimum - 1) * 100:+.1f}%)" if minimum else ""
    print(f"Twenty calls: {r.twenty_calls} ({r.twenty_writes} writes, {reads} reads)  minimum: {minimum}{over}")
    print(f"Whop calls: {r.whop_calls}")
    recorded = run["recorded"]
    timeline_calls = sum(1 for c in recorded.calls if c.service == "twenty" and c.what == "createTimelineActivities")
    lines = run["written"].get("timeline", 0)
    share = f", {timeline_calls / r.twenty_calls * 100:.1f}% of the run's Twenty calls" if r.twenty_calls else ""
    print(f"timeline lines written: {lines} in {timeline_calls} calls{share}")
    modelled = run["modelled"]
    floor = predicted_floor(reads, r.twenty_writes, modelled, rpm)
    vs = f" ({run['wall'] / floor * 100 - 100:+.1f}%)" if floor >= 1 else ""
    print(f"wall time: {run['wall']:.1f} s; predicted floor for these calls: {floor:.1f} s{vs}")
    if floor:
        rate = predicted_floor(reads, r.twenty_writes, {}, rpm)
        print(
            f"  the floor's parts: the rate limit alone {rate:.1f} s; the server's modelled time"
            f" {modelled['write_seconds']:.1f} s for {modelled['writes']} upserts,"
            f" {modelled['read_seconds']:.1f} s for {modelled['reads']} reads"
        )
    if modelled.get("writes") or modelled.get("reads"):
        # Not the bridge's time: the stand-in's own work beyond the model (its CPU is this host's).
        print(f"  the fake Twenty's own work ran {run['overrun']:.1f} s past its timing model")
    print(f"bridge CPU time: {run['cpu']:.1f} s (the rest is waiting on Twenty, Whop and the rate limit)")
    if r.twenty_writes:
        from bench.live_backfill import where_the_time_went

        where_the_time_went(run["wall"], run["recorded"])
    if run["rss"]:
        marks = ", ".join(f"{m}%: {mb:.0f} MB" for m, mb in sorted(run["rss"].items()))
        print(f"bridge RSS at {marks}; peak so far {peak_rss_mb():.0f} MB")


def bridge_env(twenty_url: str, whop_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a bridge process (CLI or `serve`) pointed at the stand-ins."""
    return {
        **os.environ,
        "TWENTY_URL": twenty_url,
        "TWENTY_API_KEY": TWENTY_KEY,
        "WHOP_API_URL": whop_url,
        "WHOP_API_KEY": WHOP_KEY,
        "WHOP_COMPANY_ID": COMPANY,
        "DATABASE_URL": database_url,
        **extra,
    }


def twenty_stats(twenty_url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{twenty_url}/_fake/stats", timeout=30).json())


def twenty_modelled(twenty_url: str) -> dict[str, Any]:
    """What the fake's timing model charged so far: reads, read_seconds, writes, write_seconds."""
    return dict(httpx.get(f"{twenty_url}/_fake/timing", timeout=30).json())


def twenty_held(twenty_url: str) -> int:
    """Records with a Whop key that Twenty holds (not deleted), over the objects the bridge writes."""
    keys = {"people": "whopUserId", "opportunities": "whopMembershipId"}
    keys |= {"whopProducts": "whopProductId", "whopPayments": "whopPaymentId"}
    fields = " ".join(f'{plural}(filter: {{{key}: {{neq: ""}}}}) {{ totalCount }}' for plural, key in keys.items())
    answer = httpx.post(
        f"{twenty_url}/graphql",
        json={"query": f"{{ {fields} }}"},
        headers={"Authorization": f"Bearer {TWENTY_KEY}"},
        timeout=120,
    ).json()
    return sum(int(conn["totalCount"]) for conn in answer["data"].values())


async def whop_records(whop_url: str) -> int:
    """What a backfill writes, counted at Whop: products, members, memberships and payments."""
    summary = httpx.get(f"{whop_url}/_fake", timeout=30).json()
    company = next(c for c in summary["companies"] if c["id"] == COMPANY)
    total = int(company["products"]) + int(company["members"]) + int(company["memberships"])
    async with WhopClient(whop_url, StaticToken(WHOP_KEY), COMPANY, requests_per_second=1000) as whop:
        async for page in whop.list_payments(page_size=100):
            total += len(page.data)
    return total


def kill_half_and_resume(twenty_url: str, whop_url: str, db: str, expected: int, rpm: int) -> None:
    """`sync --full` killed with SIGKILL once Twenty has written about half of the `expected`
    records, then run again to the end; then Twenty's writes are set against the records it holds."""
    env = bridge_env(
        twenty_url, whop_url, f"sqlite:///{db}", WHOP_REQUESTS_PER_SECOND="50", TWENTY_REQUESTS_PER_MINUTE=str(rpm)
    )
    cli = [sys.executable, "-m", "bridge.cli", "sync", "--full"]
    started = time.perf_counter()
    first = subprocess.Popen(cli, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while first.poll() is None and twenty_stats(twenty_url)["records_written"] < expected // 2:
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    at_kill = twenty_stats(twenty_url)["records_written"]
    again = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - started
    written = twenty_stats(twenty_url)["records_written"]
    held = twenty_held(twenty_url)
    print("\n## killed half way (SIGKILL), then run again")
    print(f"killed after Twenty had written {at_kill} records; the second run exited {again.returncode}")
    resumed = "resumed run" in again.stdout
    print(
        f"records written by Twenty in both runs: {written} for the {held} records it holds"
        f" ({written - held:+d}); resumed: {resumed}; both runs: {wall:.1f} s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=8000)
    parser.add_argument("--memberships", type=int, default=10000)
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--timing", choices=["real", "none"], default="real", help="the fake Twenty's timing model")
    parser.add_argument("--rpm", type=int, default=100, help="Twenty's limit (the bridge's budget matches it)")
    parser.add_argument(
        "--whop-rps",
        type=float,
        default=50,
        help="the bridge's WHOP_REQUESTS_PER_SECOND (default 50, as the README's figures; the bridge's own is 8)",
    )
    parser.add_argument("--kill-half", action="store_true", help="also kill a backfill half way and resume it")
    parser.add_argument("--naive", action="store_true", help="also one record per call, on a 10%% sample")
    parser.add_argument("--only-kill-half", action="store_true", help="just the killed-and-resumed backfill")
    args = parser.parse_args()
    batch = Settings.model_fields["twenty_batch_size"].default
    whop_args = ["--members", str(args.members), "--memberships", str(args.memberships)]
    whop_args += ["--products", str(args.products), "--company-id", COMPANY, "--api-key", WHOP_KEY, "--seed", "42"]
    twenty_args = ["--api-key", TWENTY_KEY, "--dialect", "2.x", "--timing", args.timing, "--rate-limit", str(args.rpm)]
    print(
        f"# backfill: {args.memberships} memberships, {args.members} members, {args.products} products;"
        f" bridge defaults (batch {batch}, {args.rpm} requests/min); fake Twenty timing: {args.timing}"
    )
    with tempfile.TemporaryDirectory() as tmp, server("fakes.whop", *whop_args) as whop_url:
        if args.only_kill_half:
            with server("fakes.twenty", *twenty_args) as twenty_url:
                db = os.path.join(tmp, "killed.db")
                await provision(twenty_url, db)
                kill_half_and_resume(twenty_url, whop_url, db, await whop_records(whop_url), args.rpm)
            return
        with server("fakes.twenty", *twenty_args) as twenty_url:
            db = os.path.join(tmp, "bench.db")
            await provision(twenty_url, db)
            settings = bridge_settings(
                twenty_url, whop_url, db, TWENTY_REQUESTS_PER_MINUTE=args.rpm, WHOP_REQUESTS_PER_SECOND=args.whop_rps
            )
            first = await one_run(settings)
            report("backfill", first, batch=batch, rpm=args.rpm)
            second = await one_run(settings, kind="reconcile")
            report("reconciliation, nothing changed", second, batch=batch, rpm=args.rpm)
        if args.kill_half:
            with server("fakes.twenty", *twenty_args) as twenty_url:
                db = os.path.join(tmp, "killed.db")
                await provision(twenty_url, db)
                kill_half_and_resume(twenty_url, whop_url, db, sum(first["records"].values()), args.rpm)
    if args.naive:
        await naive(args, twenty_args, batch, first)


async def naive(args: argparse.Namespace, twenty_args: list[str], batch: int, batched: dict[str, Any]) -> None:
    """The naive way costs 2 calls a record whatever the size; a 10% sample keeps the run short."""
    scale = 0.1
    sample = ["--members", str(round(args.members * scale)), "--memberships", str(round(args.memberships * scale))]
    sample += ["--products", str(max(1, round(args.products * scale))), "--company-id", COMPANY]
    sample += ["--api-key", WHOP_KEY, "--seed", "42"]
    fast = [a for a in twenty_args if a not in ("real", "--timing")] + ["--timing", "none"]
    fast[fast.index("--rate-limit") + 1] = "100000"
    with (
        tempfile.TemporaryDirectory() as tmp,
        server("fakes.whop", *sample) as whop_url,
        server("fakes.twenty", *fast) as twenty_url,
    ):
        db = os.path.join(tmp, "naive.db")
        await provision(twenty_url, db)
        settings = bridge_settings(twenty_url, whop_url, db, TWENTY_BATCH_SIZE=1, TWENTY_REQUESTS_PER_MINUTE=100_000)
        run = await one_run(settings)
        report(f"naive: one record per call, on a {scale:.0%} sample (no limits)", run, batch=1, rpm=None)
    n_calls = round(run["result"].twenty_calls / scale)
    b_calls = batched["result"].twenty_calls
    print(
        f"\nnaive/batched Twenty calls at full size: {n_calls} / {b_calls} = {n_calls / b_calls:.0f}x;"
        f" at {args.rpm} requests/min the naive backfill needs {n_calls * 60 / args.rpm / 3600:.1f} h,"
        f" the batched one {b_calls * 60 / args.rpm / 60:.1f} min"
    )


if __name__ == "__main__":
    asyncio.run(main())
