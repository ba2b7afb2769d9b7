"""Against a real Twenty (TWENTY_LIVE_URL, TWENTY_LIVE_API_KEY): a waitlist signup appears as a
lead and becomes its member's Opportunity when approved; a cancel-at-period-end opens one Task,
closed when the subscriber changes their mind. Whop is the in-process fake; the webhooks go
through the bridge's endpoint, inbox and worker. Run it on a freshly reset workspace."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bridge.config import load_settings
from bridge.runtime import Runtime, Transports
from bridge.services import provision_workspace, run_sync
from bridge.store.db import utcnow
from bridge.sync.tasks import target_field
from bridge.twenty.data import OPPORTUNITY, TASK, TASK_TARGET, TwentyDataClient
from bridge.webhooks import WebhookReceiver
from bridge.worker import Worker
from fakes.whop import FakeWhop, seed_company

LIVE_URL = os.environ.get("TWENTY_LIVE_URL")
LIVE_KEY = os.environ.get("TWENTY_LIVE_API_KEY")


def _settings(tmp_path: Any, **extra: Any) -> Any:
    return load_settings(
        TWENTY_URL=LIVE_URL,
        TWENTY_API_KEY=LIVE_KEY,
        DATABASE_URL=f"sqlite:///{tmp_path}/live.db",
        BRIDGE_PUBLIC_URL="http://127.0.0.1:8000",
        **extra,
    )


pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not (LIVE_URL and LIVE_KEY), reason="TWENTY_LIVE_URL and TWENTY_LIVE_API_KEY are not set"),
]

COMPANY = "biz_livemoments"
SECRET = "ws_live_moments_secret_0123456789"


async def test_waitlist_conversion_and_a_save_task_on_a_real_twenty(tmp_path: Any) -> None:
    whop = FakeWhop(api_key="live-whop-key")
    seed_company(whop, company_id=COMPANY, title="Live moments", members=3, memberships=3, products=1, seed=5)
    settings = _settings(
        tmp_path,
        WHOP_API_URL="http://whop.test",
        WHOP_API_KEY="live-whop-key",
        WHOP_COMPANY_ID=COMPANY,
        WHOP_WEBHOOK_SECRET=SECRET,
    )
    runtime = await Runtime.open(settings, transports=Transports(whop=httpx.ASGITransport(app=whop)))
    await provision_workspace(runtime)
    assert (await run_sync(runtime, kind="full")).status == "succeeded"
    app = Starlette(routes=[WebhookReceiver(runtime.store, [SECRET]).route()])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge.test")
    worker = Worker(runtime)
    twenty = TwentyDataClient(LIVE_URL or "", LIVE_KEY or "")

    async def deliver(event_type: str, data: Any, webhook_id: str) -> None:
        url = "http://bridge.test/webhooks/whop"
        answer = await whop.deliver(url, event_type, data, SECRET, webhook_id=webhook_id, client=http)
        assert answer.status_code == 200

    async def drain() -> None:
        while await worker.run_once():
            pass

    try:
        # A signup: a Person and an Opportunity at the stage WAITLISTED.
        plan = next(p for p in whop.plans.values() if p.company_id == COMPANY)
        entry = whop.add_waitlist_entry(COMPANY, plan.id, name="Wanda Waitlist")
        await deliver("entry.created", entry.id, f"msg_live_{time.time_ns()}")
        await drain()
        (lead,) = await twenty.find_by_keys(OPPORTUNITY, [entry.id])
        assert lead["stage"] == "WAITLISTED" and lead["pointOfContactId"]

        # Approved: the same Opportunity is the membership's now.
        membership = whop.approve_waitlist_entry(entry.id)
        await deliver("entry.approved", entry.id, f"msg_live_{time.time_ns()}")
        await deliver("membership.activated", membership.id, f"msg_live_{time.time_ns()}")
        await drain()
        (opp,) = await twenty.find_by_keys(OPPORTUNITY, [membership.id])
        assert opp["id"] == lead["id"] and opp["stage"] == "CUSTOMER"
        assert await twenty.find_by_keys(OPPORTUNITY, [entry.id]) == []

        # Set to cancel at period end, delivered twice: one Task, linked, due before the end.
        whop.update_membership(membership.id, current_period_end=utcnow() + timedelta(days=20))
        whop.update_membership(membership.id, cancel_at_period_end=True)
        cancel = whop.event("membership.cancel_at_period_end_changed", membership.id)
        await deliver(cancel["type"], cancel["data"], cancel["id"])
        await deliver(cancel["type"], cancel["data"], f"msg_live_{time.time_ns()}")
        await drain()
        # Only this subscriber's: the workspace may hold other tests' Tasks (a suite resets once).
        saves = await twenty.find(
            TASK, {"title": {"like": "%Wanda Waitlist%cancels at period end%"}}, selection="id title status dueAt"
        )
        assert len(saves) == 1 and saves[0]["status"] == "TODO", saves
        known = (await twenty.write_rules()).known_fields["taskTarget"]
        to_person, to_opportunity = target_field(known, "person"), target_field(known, "opportunity")
        targets = await twenty.find(
            TASK_TARGET, {"taskId": {"eq": saves[0]["id"]}}, selection=f"id {to_person} {to_opportunity}"
        )
        assert {t.get(to_opportunity) for t in targets} >= {opp["id"]}
        assert {t.get(to_person) for t in targets} >= {lead["pointOfContactId"]}

        # They change their mind: the bridge closes its own Task.
        whop.update_membership(membership.id, cancel_at_period_end=False)
        await deliver("membership.cancel_at_period_end_changed", membership.id, f"msg_live_{time.time_ns()}")
        await drain()
        (closed,) = await twenty.find(TASK, {"id": {"eq": saves[0]["id"]}}, selection="id status")
        assert closed["status"] == "DONE"
    finally:
        await twenty.aclose()
        await http.aclose()
        await runtime.aclose()
