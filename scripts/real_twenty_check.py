#!/usr/bin/env python3
"""Drive the bridge against a real Twenty with a stand-in Whop, as a person would check it.

    TWENTY_URL=http://127.0.0.1:3000 TWENTY_API_KEY=… .venv/bin/python scripts/real_twenty_check.py --out DIR

Steps: `provision` twice (the second must make no change), a full sync of a seeded stand-in
Whop company, then, through a running bridge, the signed webhooks of a renewal, a refund and a
cancellation; it waits until each is applied and prints what it did and the Twenty ids a
screenshot needs (a person, an opportunity, the Kanban, the dashboard), also as DIR/ids.json.
Twenty's rate limit is left as it is: the run stays well under 100 requests a minute where it can.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fakes.whop import FakeWhop, seed_company  # noqa: E402

COMPANY = "biz_demo"
WHOP_KEY = "whop-demo-key"
SECRET = "ws_check_" + "0" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    print(f"$ whop-twenty-bridge {' '.join(args)}  (exit {proc.returncode})")
    print(proc.stdout[-6000:])
    if proc.returncode != 0:
        print(proc.stderr[-4000:])
        raise SystemExit(f"`{' '.join(args)}` failed")
    return proc.stdout


def twenty(url: str, key: str, query: str, variables: dict[str, Any] | None = None, path: str = "/graphql") -> Any:
    answer = httpx.post(
        url + path,
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ).json()
    if answer.get("errors"):
        raise SystemExit(f"Twenty refused a read: {answer['errors'][0].get('message')}")
    return answer["data"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--members", type=int, default=12)
    args = parser.parse_args()
    url, key = os.environ["TWENTY_URL"].rstrip("/"), os.environ["TWENTY_API_KEY"]
    args.out.mkdir(parents=True, exist_ok=True)

    whop = FakeWhop(api_key=WHOP_KEY)
    seed_company(whop, company_id=COMPANY, title="Pickaxe Trading", members=args.members, now=time.time())
    whop_port, bridge_port = free_port(), free_port()
    server = uvicorn.Server(uvicorn.Config(whop, host="127.0.0.1", port=whop_port, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    state = Path(tempfile.mkdtemp(prefix="real-twenty-check-"))
    env = {
        **os.environ,
        "WHOP_API_URL": f"http://127.0.0.1:{whop_port}",
        "WHOP_API_KEY": WHOP_KEY,
        "WHOP_COMPANY_ID": COMPANY,
        "WHOP_WEBHOOK_SECRET": SECRET,
        "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
        "BRIDGE_ADMIN_PASSWORD": "Check-" + os.urandom(6).hex() + "!x",
        "BRIDGE_PUBLIC_URL": os.environ.get("BRIDGE_PUBLIC_URL", "http://127.0.0.1:8000"),  # the sidebar link
        "DATABASE_URL": f"sqlite:///{state}/bridge.db",
        "PYTHONUNBUFFERED": "1",
    }
    started = time.time()
    first = cli(env, "provision")
    board(url, key, "after the first provision")
    second = cli(env, "provision")
    print(f"provision: first {first.splitlines()[-1]!r}; second {second.splitlines()[-1]!r}")
    cli(env, "sync", "--full")
    board(url, key, "after the sync")

    log = (state / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "--port", str(bridge_port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{bridge_port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        events = webhooks(whop, f"http://127.0.0.1:{bridge_port}/webhooks/whop")
        wait_applied(env, len(events))
    finally:
        serve.terminate()
        serve.wait(30)
    board(url, key, "after the webhooks")
    ids = screenshot_ids(url, key, events)
    ids["seconds"] = round(time.time() - started, 1)
    (args.out / "ids.json").write_text(json.dumps(ids, indent=2))
    print(json.dumps(ids, indent=2))
    return 0


def all_views(url: str, key: str) -> list[dict[str, Any]]:
    """Every view (2.x `getViews`, 1.x `getCoreViews`)."""
    fields = "id name key kanbanAggregateOperation"
    try:
        return list(twenty(url, key, f"{{ getViews {{ {fields} }} }}", path="/metadata")["getViews"])
    except SystemExit:
        return list(twenty(url, key, f"{{ getCoreViews {{ {fields} }} }}", path="/metadata")["getCoreViews"])


def board(url: str, key: str, when: str) -> None:
    """What the memberships Kanban's column headers show, as Twenty reports it."""
    found = [v["kanbanAggregateOperation"] for v in all_views(url, key) if v["name"] == "Whop memberships"]
    print(f"Kanban column aggregate {when}: {found}")


def webhooks(whop: FakeWhop, endpoint: str) -> list[dict[str, str]]:
    """A renewal (a new successful payment a period later), a refund of a paid payment, and a
    cancellation of another member's membership, each sent as Whop signs it."""
    import asyncio

    active = [m for m in whop.memberships.values() if m.company_id == COMPANY and m.status == "active"]
    renewed, canceled = active[0], active[-1]
    paid = next(p for p in whop.payments.values() if p.membership_id == active[1].id and p.status == "paid")
    now = time.time()
    renewal = whop.add_payment(renewed.id, created_at=now, billing_reason="subscription_cycle")
    whop.update_membership(renewed.id, current_period_start=now, current_period_end=now + 30 * 86400)
    whop.update_payment(paid.id, status="paid", substatus="refunded", refunded_amount=paid.total, refunded_at=now)
    whop.update_membership(canceled.id, status="canceled", canceled_at=now, cancel_at_period_end=False)
    refund = {"id": "rfnd_check0001", "status": "succeeded", "payment": {"id": paid.id}}
    sent: list[tuple[str, Any, str]] = [
        ("payment.succeeded", renewal.id, renewed.id),
        ("refund.created", refund, paid.membership_id or ""),
        ("membership.deactivated", canceled.id, canceled.id),
    ]
    out = []
    for kind, data, membership in sent:
        answer = asyncio.run(whop.deliver(endpoint, kind, data, SECRET, company_id=COMPANY))
        object_id = data if isinstance(data, str) else data["id"]
        print(f"webhook {kind} {object_id}: HTTP {answer.status_code}")
        out.append({"type": kind, "object": object_id, "membership": membership})
    return out


def wait_applied(env: dict[str, str], count: int) -> None:
    deadline = time.time() + 300
    listing = ""
    while time.time() < deadline:
        listing = subprocess.run(
            [sys.executable, "-m", "bridge.cli", "webhooks", "list"], cwd=ROOT, env=env, capture_output=True, text=True
        ).stdout
        if listing.count("applied") >= count:
            print(listing)
            return
        time.sleep(2)
    raise SystemExit("the webhooks were not applied within 5 minutes:\n" + listing)


def screenshot_ids(url: str, key: str, events: list[dict[str, str]]) -> dict[str, Any]:
    memberships = [e["membership"] for e in events]
    data = twenty(
        url,
        key,
        "query($f: OpportunityFilterInput) { opportunities(filter: $f) "
        "{ edges { node { id whopMembershipId pointOfContactId } } } }",
        {"f": {"whopMembershipId": {"in": memberships}}},  # a filter variable: 1.x and 2.x type `in` apart
    )
    opportunities = {e["node"]["whopMembershipId"]: e["node"] for e in data["opportunities"]["edges"]}
    out: dict[str, Any] = {"events": events, "opportunities": opportunities}
    renewed = opportunities.get(memberships[0]) or {}
    out["person"] = renewed.get("pointOfContactId")
    out["opportunity"] = renewed.get("id")
    out["kanban"] = next((v["id"] for v in all_views(url, key) if v["name"] == "Whop memberships"), None)
    try:
        boards = twenty(url, key, "{ dashboards(first: 20) { edges { node { id title } } } }")["dashboards"]["edges"]
    except SystemExit:  # 1.x has no dashboards
        boards = []
    out["dashboard"] = next((e["node"]["id"] for e in boards if e["node"]["title"] == "Whop"), None)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
