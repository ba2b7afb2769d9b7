"""Against a real Twenty: set TWENTY_LIVE_URL and TWENTY_LIVE_API_KEY (an Admin key) to run.

Provisioning is additive and idempotent, and the sync writes a few records keyed by fixed
stand-in Whop ids, so re-running updates the same records. Nothing is ever deleted.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from bridge.config import load_settings
from bridge.runtime import Runtime, Transports
from bridge.services import provision_workspace, run_sync
from bridge.twenty.data import OPPORTUNITY, PERSON, TwentyDataClient
from tests.fakes.whop import FakeWhop, seed_company

LIVE_URL = os.environ.get("TWENTY_LIVE_URL")
LIVE_KEY = os.environ.get("TWENTY_LIVE_API_KEY")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not (LIVE_URL and LIVE_KEY), reason="TWENTY_LIVE_URL and TWENTY_LIVE_API_KEY are not set"),
]


def _settings(tmp_path: Any, **extra: Any) -> Any:
    return load_settings(
        TWENTY_URL=LIVE_URL,
        TWENTY_API_KEY=LIVE_KEY,
        DATABASE_URL=f"sqlite:///{tmp_path}/live.db",
        BRIDGE_PUBLIC_URL="http://127.0.0.1:8000",
        **extra,
    )


async def test_provisioning_a_real_twenty_then_a_second_run_changes_nothing(tmp_path: Any) -> None:
    async with await Runtime.open(_settings(tmp_path)) as runtime:
        first = await provision_workspace(runtime)
    assert not first.plan.conflicts, [c.detail for c in first.plan.conflicts]
    async with await Runtime.open(_settings(tmp_path)) as runtime:
        second = await provision_workspace(runtime)
    assert second.mutations == 0
    assert {i.status for i in second.plan.items} <= {"present", "manual", "unsupported"}


async def test_a_small_full_sync_into_a_real_twenty(tmp_path: Any) -> None:
    whop = FakeWhop(api_key="live-whop-key")
    seeded = seed_company(
        whop,
        company_id="biz_livetest",
        title="Live test",
        members=4,
        memberships=5,
        products=2,
        seed=99,
        neighbor=False,
    )
    settings = _settings(
        tmp_path, WHOP_API_URL="http://whop.test", WHOP_API_KEY="live-whop-key", WHOP_COMPANY_ID="biz_livetest"
    )
    runtime = await Runtime.open(settings, transports=Transports(whop=httpx.ASGITransport(app=whop)))
    await provision_workspace(runtime)
    result = await run_sync(runtime, kind="full")
    assert result.status == "succeeded"
    assert not [p for p in result.problems if p["kind"] == "failed"], result.problems

    async with TwentyDataClient(LIVE_URL or "", LIVE_KEY or "") as twenty:
        opportunities = await twenty.find_by_keys(OPPORTUNITY, seeded.membership_ids)
        assert {o["whopMembershipId"] for o in opportunities} == set(seeded.membership_ids)
        assert all(o.get("pointOfContactId") for o in opportunities)
        people = await twenty.find(PERSON, {"id": {"in": [o["pointOfContactId"] for o in opportunities]}})
        assert all(p.get("whopUserId") for p in people)
    again = await run_sync(runtime, kind="full")
    assert again.twenty_writes == 0
