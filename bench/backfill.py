"""Backfill benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/backfill.py                 # 10,000 memberships / 8,000 members / 20 products
    .venv/bin/python bench/backfill.py --members 800 --memberships 1000 --products 5   # a quick look

Runs the fake Twenty and fake Whop as separate uvicorn processes on loopback (so the peak RSS
printed is the bridge's own) and the bridge in this process:

1. the backfill with Twenty's real limits on (100 requests/min, 200 records a call, 20 ms latency);
2. a second run with nothing changed (goal: zero writes);
3. the same backfill with the limits raised;
4. the naive way, one record per call, with limits raised, and its cost projected at 100/min.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.config import load_settings  # noqa: E402
from bridge.runtime import Runtime  # noqa: E402
from bridge.services import provision_workspace, run_sync  # noqa: E402

TWENTY_KEY = "bench-twenty-key"
WHOP_KEY = "bench-whop-key"
COMPANY = "biz_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(module: str, *args: str) -> Any:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
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
        proc.wait(10)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def one_run(
    twenty_url: str, whop_url: str, db: str, *, batch: int, rpm: int, kind: str = "full"
) -> dict[str, Any]:
    settings = load_settings(
        TWENTY_URL=twenty_url,
        TWENTY_API_KEY=TWENTY_KEY,
        WHOP_API_URL=whop_url,
        WHOP_API_KEY=WHOP_KEY,
        WHOP_COMPANY_ID=COMPANY,
        DATABASE_URL=f"sqlite:///{db}",
        TWENTY_BATCH_SIZE=batch,
        TWENTY_REQUESTS_PER_MINUTE=rpm,
        WHOP_REQUESTS_PER_SECOND=50,
    )
    started, cpu = time.perf_counter(), time.process_time()
    async with await Runtime.open(settings) as runtime:
        result = await run_sync(runtime, kind=kind)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    records = {
        obj: sum(v for k, v in c.items() if k in ("created", "updated", "unchanged", "skipped", "failed"))
        for obj, c in result.counts.items()
        if obj != "payment"
    }
    written = {obj: c.get("created", 0) + c.get("updated", 0) for obj, c in result.counts.items() if obj != "payment"}
    return {"wall": wall, "cpu": cpu, "result": result, "records": records, "written": written}


def minimum_calls(written: dict[str, int], batch: int) -> int:
    """One read and one upsert per batch of changed records, per object."""
    return sum(2 * math.ceil(n / batch) for n in written.values() if n)


async def provision(twenty_url: str, db: str) -> None:
    settings = load_settings(TWENTY_URL=twenty_url, TWENTY_API_KEY=TWENTY_KEY, DATABASE_URL=f"sqlite:///{db}")
    async with await Runtime.open(settings) as runtime:
        await provision_workspace(runtime)


def report(title: str, run: dict[str, Any], *, batch: int, rpm: int | None) -> None:
    r = run["result"]
    minimum = minimum_calls(run["written"], batch)
    print(f"\n## {title}")
    print(f"records: {run['records']}  written: {run['written']}  status: {r.status}  problems: {len(r.problems)}")
    print(
        f"Twenty calls: {r.twenty_calls} ({r.twenty_writes} writes, {r.twenty_calls - r.twenty_writes} reads)"
        f"  minimum: {minimum}" + (f"  (+{(r.twenty_calls / minimum - 1) * 100:.1f}%)" if minimum else "")
    )
    print(f"Whop calls: {r.whop_calls}")
    print(f"wall time: {run['wall']:.1f} s", end="")
    if rpm:
        # Twenty's bucket starts full (a burst of `rpm`), then refills at rpm/60 per second.
        floor = max(0, r.twenty_calls - rpm) * 60 / rpm
        strict = r.twenty_calls * 60 / rpm
        print(
            f"  rate-limit floor: {floor:.1f} s after the initial burst of {rpm}"
            f" ({run['wall'] / floor * 100 - 100:+.1f}%)"
            if floor
            else "",
            end="",
        )
        print(f"; {strict:.1f} s counting every call at {rpm}/min", end="")
    print(f"\nbridge CPU time: {run['cpu']:.1f} s (the rest is waiting on Twenty, Whop and the rate limit)")
    print(f"peak RSS of the bridge process so far: {peak_rss_mb():.0f} MB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=8000)
    parser.add_argument("--memberships", type=int, default=10000)
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--skip-limited", action="store_true", help="only the runs with limits raised")
    parser.add_argument("--naive-sample", type=float, default=0.1, help="share of the data for the naive run")
    args = parser.parse_args()
    whop_args = [
        "--members",
        str(args.members),
        "--memberships",
        str(args.memberships),
        "--products",
        str(args.products),
        "--company-id",
        COMPANY,
        "--api-key",
        WHOP_KEY,
        "--seed",
        "42",
    ]
    twenty_common = ["--api-key", TWENTY_KEY, "--dialect", "2.x", "--latency", str(args.latency)]
    print(
        f"# backfill: {args.memberships} memberships, {args.members} members, {args.products} products;"
        f" batch {args.batch}; Twenty latency {args.latency * 1000:.0f} ms"
    )
    with tempfile.TemporaryDirectory() as tmp, server("tests.fakes.whop", *whop_args) as whop_url:
        if not args.skip_limited:
            with server("tests.fakes.twenty", *twenty_common, "--rate-limit", "100") as twenty_url:
                db = os.path.join(tmp, "limited.db")
                await provision(twenty_url, db)
                first = await one_run(twenty_url, whop_url, db, batch=args.batch, rpm=100)
                report("limits on: 100 requests/min", first, batch=args.batch, rpm=100)
                second = await one_run(twenty_url, whop_url, db, batch=args.batch, rpm=100, kind="reconcile")
                report("second run, nothing changed (limits on)", second, batch=args.batch, rpm=100)
        with server("tests.fakes.twenty", *twenty_common) as twenty_url:
            db = os.path.join(tmp, "raised.db")
            await provision(twenty_url, db)
            raised = await one_run(twenty_url, whop_url, db, batch=args.batch, rpm=100_000)
            report("limits raised", raised, batch=args.batch, rpm=None)
    # The naive way costs 2 calls a record whatever the size; a sample keeps the run short.
    scale = args.naive_sample
    sample = [
        "--members",
        str(round(args.members * scale)),
        "--memberships",
        str(round(args.memberships * scale)),
        "--products",
        str(max(1, round(args.products * scale))),
        "--company-id",
        COMPANY,
        "--api-key",
        WHOP_KEY,
        "--seed",
        "42",
    ]
    with (
        tempfile.TemporaryDirectory() as tmp,
        server("tests.fakes.whop", *sample) as whop_url,
        server("tests.fakes.twenty", *twenty_common) as twenty_url,
    ):
        db = os.path.join(tmp, "naive.db")
        await provision(twenty_url, db)
        naive = await one_run(twenty_url, whop_url, db, batch=1, rpm=100_000)
        report(f"naive: one record per call, on a {scale:.0%} sample (limits raised)", naive, batch=1, rpm=None)
        n_calls = round(naive["result"].twenty_calls / scale)
        b_calls = raised["result"].twenty_calls
        print(
            f"\nnaive/batched Twenty calls at full size: {n_calls} (the sample's x {1 / scale:.0f}) / {b_calls}"
            f" = {n_calls / b_calls:.0f}x; at 100 requests/min the naive backfill needs"
            f" {n_calls * 0.6 / 3600:.1f} h, the batched one {b_calls * 0.6 / 60:.1f} min"
        )


if __name__ == "__main__":
    asyncio.run(main())
