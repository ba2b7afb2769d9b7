"""Backfill benchmark on a real Twenty: the bridge at its defaults beside the floor of a minimal
client writing the same records, measured in the same run. Prints figures, asserts nothing.

    .venv/bin/python bench/live_backfill.py --url http://127.0.0.1:3000 --key-file KEYFILE \\
        --reset 'command that resets the workspace' [--members 2000 --memberships 2000 --products 3]

1. The workspace is reset (`--reset`) and provisioned (not timed).
2. The bridge's `sync --full` at its defaults, the fake Whop in its own process; every Twenty and
   Whop call is recorded (when it started and ended, what it was), and the Twenty calls are
   told apart: upserts, keyed reads, the rest.
3. The workspace is reset and provisioned again, and the floor is measured: a minimal client
   sends the very upserts the bridge sent (the same records in the same batches of 200, links
   pointed at the new ids), one after another, no reads, within Twenty's 100 requests a minute.
4. Both, their ratio, and where the bridge's time went: what it waited on before its first
   upsert, between upserts, and after its last one.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backfill import COMPANY, WHOP_KEY, server  # noqa: E402
from bridge.config import Settings, load_settings  # noqa: E402
from bridge.limiter import TokenBucket  # noqa: E402
from bridge.runtime import Runtime, Transports  # noqa: E402
from bridge.services import provision_workspace, run_sync  # noqa: E402

TWENTY_RPM = 100  # Twenty's default limit per workspace


@dataclass
class Call:
    service: str  # twenty | whop | metadata
    kind: str  # upsert | read | deleted | other (Twenty); the path's resource (Whop)
    what: str  # the operation, e.g. "createPeople" or "/api/v1/memberships"
    start: float
    end: float
    records: int = 0  # records sent (upsert) or answered (read)
    status: int = 0


@dataclass
class Recorded:
    """Every call of one run, and the upserts' bodies and answers (for the floor's replay)."""

    t0: float = field(default_factory=time.perf_counter)
    calls: list[Call] = field(default_factory=list)
    upserts: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)  # (request, answer)


class Recorder(httpx.AsyncBaseTransport):
    """An HTTP transport that notes each call and passes it on unchanged."""

    def __init__(self, inner: httpx.AsyncBaseTransport, service: str, into: Recorded) -> None:
        self.inner = inner
        self.service = service
        self.into = into

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter() - self.into.t0
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        end = time.perf_counter() - self.into.t0
        call = Call(self.service, "", request.url.path, start, end, status=response.status_code)
        if self.service == "whop":
            parts = request.url.path.split("/")
            call.kind = parts[3] if len(parts) > 3 else request.url.path
        elif request.url.path.endswith("/metadata"):
            call.service, call.kind = "metadata", "metadata"
        else:
            self._classify(call, request, content)
        self.into.calls.append(call)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )

    def _classify(self, call: Call, request: httpx.Request, content: bytes) -> None:
        try:
            body = json.loads(request.content or b"{}")
            answer = json.loads(content or b"{}")
        except ValueError:
            call.kind = "other"
            return
        query = str(body.get("query") or "")
        data = (answer.get("data") or {}) if isinstance(answer, dict) else {}
        if query.lstrip().startswith("mutation Upsert"):
            call.kind = "upsert"
            call.what = next(iter(data), "upsert")
            call.records = len((body.get("variables") or {}).get("data") or [])
            self.into.upserts.append((body, answer))
        elif query.lstrip().startswith("query Deleted"):
            call.kind, call.what = "deleted", "read deleted records"
        elif query.lstrip().startswith("query Find"):
            call.kind = "read"
            call.what = next(iter(data), "read")
            call.records = sum(len(v.get("edges") or ()) for v in data.values() if isinstance(v, dict))
        else:
            call.kind, call.what = "other", query.split("{")[0].strip() or "other"


def settings_for(url: str, key: str, whop_url: str, db: str, **extra: Any) -> Settings:
    """The bridge at its defaults (batch 200, 100 Twenty requests a minute, 8 Whop requests a
    second), pointed at the real Twenty and the fake Whop."""
    return load_settings(
        _env_file=None,
        TWENTY_URL=url,
        TWENTY_API_KEY=key,
        WHOP_API_URL=whop_url,
        WHOP_API_KEY=WHOP_KEY,
        WHOP_COMPANY_ID=COMPANY,
        DATABASE_URL=f"sqlite:///{db}",
        **extra,
    )


def reset(command: str) -> None:
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=900)  # noqa: S602
    if done.returncode != 0:
        raise SystemExit(f"--reset exited {done.returncode}: {done.stdout}\n{done.stderr}")


async def provision(settings: Settings) -> None:
    async with await Runtime.open(settings) as runtime:
        result = await provision_workspace(runtime)
    if result.plan.conflicts:
        raise SystemExit(f"provisioning found conflicts: {[c.detail for c in result.plan.conflicts]}")


async def bridge_run(settings: Settings) -> tuple[float, Any, Recorded]:
    recorded = Recorded()
    transports = Transports(
        twenty=Recorder(httpx.AsyncHTTPTransport(), "twenty", recorded),
        whop=Recorder(httpx.AsyncHTTPTransport(), "whop", recorded),
    )
    async with await Runtime.open(settings, transports=transports) as runtime:
        recorded.t0 = time.perf_counter()
        result = await run_sync(runtime, kind="full")
        wall = time.perf_counter() - recorded.t0
    return wall, result, recorded


# The floor ---------------------------------------------------------------------------------------


@dataclass
class Timed:
    """One upsert of the floor: how long it took, how many records, what went and came back."""

    seconds: float
    records: int
    sent: dict[str, Any]
    answer: dict[str, Any]


def _remap(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every Twenty id of the bridge's run replaced by the floor run's id."""
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, list):
        return [_remap(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _remap(v, ids) for k, v in value.items()}
    return value


def _uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _ids_by_key(answer: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(field, key value) → id for each record an upsert answered, by its Whop key field."""
    out: dict[tuple[str, str], str] = {}
    for rows in (answer.get("data") or {}).values():
        for row in rows or ():
            for name, value in row.items():
                if name.startswith("whop") and name.endswith("Id") and isinstance(value, str) and not _uuid(value):
                    out[(name, value)] = str(row["id"])  # a Whop key (a UUID is a link)
    return out


async def floor_run(
    url: str, key: str, upserts: list[tuple[dict[str, Any], dict[str, Any]]]
) -> tuple[float, int, list[Timed]]:
    """The bridge's upserts again, one after another, on a fresh workspace: (seconds, calls,
    each upsert's seconds, records and answer)."""
    old: dict[tuple[str, str], str] = {}
    for _, answer in upserts:
        old.update(_ids_by_key(answer))
    # Twenty's bucket: a minute's worth at once, then refilled continuously (as the bridge assumes).
    bucket = TokenBucket(TWENTY_RPM / 60.0, float(TWENTY_RPM))
    ids: dict[str, str] = {}
    calls = 0
    each: list[Timed] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=120) as http:
        started = time.perf_counter()
        for body, _ in upserts:
            sent = {"query": body["query"], "variables": _remap(body["variables"], ids)}
            while True:
                await bucket.acquire()
                calls += 1
                began = time.perf_counter()
                answer = (await http.post("/graphql", json=sent)).json()
                each.append(Timed(time.perf_counter() - began, len(sent["variables"]["data"]), sent, answer))
                errors = answer.get("errors") or []
                if errors and "limit reached" in str(errors[0].get("message", "")).lower():
                    await asyncio.sleep(1.2)  # the bucket was off by a call: wait for one token
                    continue
                if errors:
                    raise SystemExit(f"the floor's upsert was refused: {errors[0]}")
                break
            for k, new_id in _ids_by_key(answer).items():
                if k in old:
                    ids[old[k]] = new_id
        return time.perf_counter() - started, calls, each


# Calibration of the stand-in's timing model -------------------------------------------------------


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares of seconds = a + b × records over (records, seconds): (a, b)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    b = sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0
    return mean_y - b * mean_x, b


async def calibrate(url: str, key: str, floor_upserts: list[Timed]) -> dict[str, float]:
    """What the fake's `Timing` should charge, from this server: creates from the floor's
    upserts (seconds, records), updates from sending a few of them again (the records exist
    now), reads from keyed reads of 200 ids that exist and 200 that do not."""
    headers = {"Authorization": f"Bearer {key}"}
    bucket = TokenBucket(TWENTY_RPM / 60.0, float(TWENTY_RPM) * 0.5)  # what the floor left
    per_call, per_created = _fit([(u.records, u.seconds) for u in floor_upserts])
    updates: list[tuple[float, float]] = []
    reads: list[tuple[float, float]] = []
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=120) as http:

        async def timed(body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            await bucket.acquire()
            started = time.perf_counter()
            answer = (await http.post("/graphql", json=body)).json()
            return time.perf_counter() - started, answer

        by_object: dict[str, list[dict[str, Any]]] = {}
        for body in (u.sent for u in floor_upserts):
            by_object.setdefault(body["query"].split("create", 1)[1].split("(")[0], []).append(body)
        for bodies in by_object.values():
            for body in bodies[:2]:  # the records the floor created: now an update each
                seconds, answer = await timed(body)
                if not answer.get("errors"):
                    updates.append((len(body["variables"]["data"]), seconds))
        for upsert in floor_upserts[:3]:
            answer = upsert.answer
            rows = next(iter((answer.get("data") or {}).values()), None) or []
            ids = [r["id"] for r in rows if r.get("id")]
            plural = next(iter(answer.get("data") or {}), "createPeople").removeprefix("create")
            plural = plural[:1].lower() + plural[1:]
            for wanted in (ids, [str(uuid.uuid4()) for _ in ids]):
                listed = ", ".join(f'"{uuid.UUID(i)}"' for i in wanted)  # well-formed ids only
                root = f"{plural}(filter: {{id: {{in: [{listed}]}}}}, first: 200) {{ edges {{ node {{ id }} }} }}"
                query = f"query Find {{ {root} }}"
                seconds, answer = await timed({"query": query, "variables": {}})
                if not answer.get("errors"):
                    found = len(next(iter(answer["data"].values()))["edges"])
                    reads.append((found, seconds))
    model = {"per_call": per_call, "per_created": per_created}
    if updates:
        model["per_updated"] = max(0.0, sum(t - per_call for _, t in updates) / sum(n for n, _ in updates))
    if reads:
        read_call, per_read = _fit(reads)
        model.update(read_call=read_call, per_read_record=per_read)
    print("\ncalibration (for fakes/twenty Timing):")
    print(f"  creates: {len(floor_upserts)} upserts: {per_call:.3f} s a call + {per_created * 1000:.2f} ms a record")
    if updates:
        print(f"  updates: {len(updates)} upserts of existing records: {model['per_updated'] * 1000:.2f} ms a record")
    if reads:
        per_read = model["per_read_record"] * 1000
        print(f"  reads: {len(reads)}: {model['read_call']:.3f} s a call + {per_read:.2f} ms a record")
    return model


# The report --------------------------------------------------------------------------------------


def busy(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the intervals."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def where_the_time_went(wall: float, recorded: Recorded) -> None:
    twenty = [c for c in recorded.calls if c.service == "twenty"]
    whop = [c for c in recorded.calls if c.service == "whop"]
    upserts = sorted((c for c in twenty if c.kind == "upsert"), key=lambda c: c.start)
    print("\nwhere the bridge's time went (seconds from the start of the run):")
    by_kind: Counter[str] = Counter(c.kind for c in twenty)
    for kind in ("upsert", "read", "deleted", "other"):
        mine = [c for c in twenty if c.kind == kind]
        if mine:
            spent = sum(c.end - c.start for c in mine)
            print(
                f"  Twenty {kind:8} {by_kind[kind]:4} calls, {spent:6.1f} s in flight (mean {spent / len(mine):.2f} s)"
            )
    meta = [c for c in recorded.calls if c.service == "metadata"]
    if meta:
        print(f"  Twenty metadata {len(meta):3} calls, {sum(c.end - c.start for c in meta):6.1f} s in flight")
    spent = sum(c.end - c.start for c in whop)
    whop_busy = busy([(c.start, c.end) for c in whop])
    print(f"  Whop           {len(whop):4} calls, {spent:6.1f} s in flight, busy {whop_busy:.1f} s")
    for kind, n in Counter(c.kind for c in whop).most_common():
        print(f"      {kind}: {n}")
    if not upserts:
        return
    first, last = upserts[0], upserts[-1]
    write_busy = busy([(c.start, c.end) for c in upserts])
    print(f"  first upsert at {first.start:.1f} s; last upsert ends at {last.end:.1f} s; the run ends at {wall:.1f} s")
    print(
        f"  upserts in flight {write_busy:.1f} s of the {last.end - first.start:.1f} s between the first and the last"
    )
    gaps = []
    for a, b in itertools.pairwise(upserts):
        if b.start - a.end > 0.05:
            gaps.append((b.start - a.end, a, b))
    idle = sum(g for g, _, _ in gaps)
    print(f"  no upsert in flight between them: {idle:.1f} s in {len(gaps)} gaps; the longest:")
    for gap, a, b in sorted(gaps, key=lambda g: -g[0])[:6]:
        inside = [c for c in recorded.calls if c.start >= a.end - 0.01 and c.start < b.start]
        what = Counter(f"{c.service}:{c.kind}" for c in inside)
        print(f"    {gap:5.2f} s after {a.what} ({a.end:.1f} s) before {b.what}: {dict(what)}")
    print("  phases (Twenty upserts by object: first start - last end, calls):")
    for what in dict.fromkeys(c.what for c in upserts):
        mine = [c for c in upserts if c.what == what]
        print(f"    {what:24} {mine[0].start:6.1f} - {mine[-1].end:6.1f} s  {len(mine)} upserts")
    before = [c for c in recorded.calls if c.start < first.start]
    print(f"  before the first upsert ({first.start:.1f} s): {dict(Counter(f'{c.service}:{c.kind}' for c in before))}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("TWENTY_URL", "http://127.0.0.1:3000"))
    parser.add_argument("--key-file", help="a file holding the Admin API key (else TWENTY_API_KEY)")
    parser.add_argument("--reset", required=True, help="a shell command that resets the workspace")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--memberships", type=int, default=2000)
    parser.add_argument("--products", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--whop-latency", type=float, default=0.0, help="seconds the fake Whop adds to each call")
    parser.add_argument("--calibrate", action="store_true", help="also fit the fake Twenty's timing model")
    parser.add_argument("--json", help="also write the figures and the call timeline here")
    parser.add_argument(
        "--part",
        choices=["both", "bridge", "floor"],
        default="both",
        help="bridge: only the bridge's run (saved with --upserts); floor: only the floor, from that file",
    )
    parser.add_argument("--upserts", help="where the bridge's run is saved for a later --part floor")
    args = parser.parse_args()
    key = Path(args.key_file).read_text().strip() if args.key_file else os.environ.get("TWENTY_API_KEY", "")
    if not key:
        raise SystemExit("give --key-file or TWENTY_API_KEY")
    whop_args = [
        "--members",
        str(args.members),
        "--memberships",
        str(args.memberships),
        "--products",
        str(args.products),
    ]
    whop_args += ["--company-id", COMPANY, "--api-key", WHOP_KEY, "--seed", str(args.seed), "--now", "anchor"]
    whop_args += ["--latency", str(args.whop_latency)]
    print(
        f"# backfill on a real Twenty ({args.url}): {args.members} members, {args.memberships} memberships,"
        f" {args.products} products; the bridge at its defaults"
    )
    saved = Path(args.upserts) if args.upserts else None
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("bridge", "both"):
            with server("fakes.whop", *whop_args) as whop_url:
                settings = settings_for(args.url, key, whop_url, os.path.join(tmp, "bridge.db"))
                reset(args.reset)
                await provision(settings)
                wall, result, recorded = await bridge_run(settings)
            run = bridge_figures(wall, result, recorded)
            if saved is not None:
                saved.write_text(json.dumps({"run": run, "upserts": recorded.upserts}))
            if args.part == "bridge":
                print_bridge(run, recorded)
                return
        else:
            if saved is None:
                raise SystemExit("--part floor needs --upserts FILE from a --part bridge run")
            kept = json.loads(saved.read_text())
            run = kept["run"]
            recorded = Recorded(calls=[Call(**c) for c in run["calls"]], upserts=[tuple(u) for u in kept["upserts"]])
        reset(args.reset)
        await provision(settings_for(args.url, key, "http://127.0.0.1:9", os.path.join(tmp, "floor.db")))
        floor_s, floor_calls, floor_each = await floor_run(args.url, key, recorded.upserts)
        model = await calibrate(args.url, key, floor_each) if args.calibrate else None

    print_bridge(run, recorded)
    print(f"floor:  {floor_s:.1f} s, {floor_calls} Twenty calls (the same {len(recorded.upserts)} upserts, no reads)")
    print(f"ratio:  {run['wall'] / floor_s:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({**run, "args": vars(args), "floor": floor_s, "floor_calls": floor_calls,
                                               "model": model}, indent=1))  # fmt: skip


def bridge_figures(wall: float, result: Any, recorded: Recorded) -> dict[str, Any]:
    records = {obj: c.get("created", 0) + c.get("updated", 0) for obj, c in result.counts.items() if obj != "payment"}
    return {
        "wall": wall,
        "records": records,
        "status": result.status,
        "problems": len(result.problems),
        "twenty_calls": result.twenty_calls,
        "twenty_writes": result.twenty_writes,
        "whop_calls": result.whop_calls,
        "calls": [c.__dict__ for c in recorded.calls],
    }


def print_bridge(run: dict[str, Any], recorded: Recorded) -> None:
    records = run["records"]
    reads = run["twenty_calls"] - run["twenty_writes"]
    print(f"\nrecords written: {records} ({sum(records.values())}); status {run['status']}; problems {run['problems']}")
    calls, writes = run["twenty_calls"], run["twenty_writes"]
    print(f"bridge: {run['wall']:.1f} s, {calls} Twenty calls ({writes} writes, {reads} reads),")
    print(f"        {run['whop_calls']} Whop calls")
    where_the_time_went(run["wall"], recorded)


if __name__ == "__main__":
    asyncio.run(main())
