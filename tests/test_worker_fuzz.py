"""Hostile but signed deliveries, generated: no payload breaks a worker pass (issue 13).

Hypothesis builds envelopes and payloads (real records with fields swapped for hostile values,
and shapes of its own) and stores them in the inbox as the endpoint would after verifying them,
beside one ordinary delivery. After the worker's passes: nothing escaped, nothing is left
claimed, the ordinary event applied, every failure carries a short error of its own, and no
record of another company reached Twenty. Deterministic (derandomized) and a few seconds long.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.services import run_sync
from bridge.store import inbox
from bridge.twenty.data import TwentyDataClient
from bridge.webhooks import parse_envelope
from bridge.worker import Worker
from tests.sync.conftest import COMPANY, TWENTY_KEY, World, make_world

OTHER_COMPANY = "biz_othercompany"
FIELDS = (
    "id",
    "status",
    "updated_at",
    "created_at",
    "canceled_at",
    "paid_at",
    "renewal_price",
    "initial_price",
    "total",
    "currency",
    "account",
    "account_id",
    "company_id",
    "member_id",
    "user_id",
    "product_id",
    "membership_id",
    "membership",
    "payment",
    "user",
    "title",
    "email",
)
EVENT_TYPES = (
    "membership.updated",
    "membership.activated",
    "payment.succeeded",
    "payment.failed",
    "refund.created",
    "dispute.created",
    "product.updated",
    "member.updated",
)


async def _no_sleep(_: float) -> None:
    return None


def _strategies(world: World, ours: list[str], theirs: list[str], renders: list[dict[str, Any]]) -> Any:
    ids = st.one_of(
        st.sampled_from(ours + theirs),
        st.sampled_from([".", "..", "", "mem_1/../../products", "mem_%2e%2e", "mem_" + "x" * 70_000, "prod_\x00"]),
        st.text(max_size=12),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.none(),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )
    times = st.one_of(
        st.none(),
        st.floats(),
        st.integers(min_value=-(10**25), max_value=10**25),
        st.text(alphabet="0123456789", min_size=1, max_size=24),
        st.sampled_from(["1e300", "2026-10-01T00:00:00Z", "2099-01-01T00:00:00.000Z", "0000-00-00", "Z", "-1"]),
        st.text(max_size=10),
    )
    amounts = st.one_of(
        st.sampled_from(["1E+54", "-1E+54", "1E+60", "1E-40", "NaN", "-Infinity", "9" * 80, "$49.00", "1e999999"]),
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
        st.floats(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.none(),
    )
    money = st.one_of(
        amounts,
        st.fixed_dictionaries(
            {"amount": amounts, "currency": st.one_of(st.none(), st.text(max_size=4), st.integers())}
        ),
    )
    companies = st.one_of(st.sampled_from([COMPANY, OTHER_COMPANY, "", "biz_" + "y" * 200]), st.none(), st.integers())
    values = {
        "id": ids,
        "status": st.one_of(st.text(max_size=12), st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
        "updated_at": times,
        "created_at": times,
        "canceled_at": times,
        "paid_at": times,
        "renewal_price": money,
        "initial_price": money,
        "total": money,
        "currency": st.one_of(st.text(max_size=5), st.integers(), st.none()),
        "account": st.one_of(st.none(), st.fixed_dictionaries({"id": companies}), st.text(max_size=3)),
        "account_id": companies,
        "company_id": companies,
        "member_id": ids,
        "user_id": ids,
        "product_id": ids,
        "membership_id": ids,
        "membership": st.one_of(st.fixed_dictionaries({"id": ids}), ids),
        "payment": st.one_of(st.fixed_dictionaries({"id": ids}), ids),
        "user": st.one_of(st.none(), st.fixed_dictionaries({"id": ids, "email": st.text(max_size=12)})),
        "title": st.one_of(st.text(max_size=30), st.integers()),
        "email": st.one_of(st.text(max_size=30), st.just("a@" + "b" * 300 + ".com")),
    }
    changes = st.dictionaries(st.sampled_from(FIELDS), st.none(), max_size=5).flatmap(
        lambda keys: st.fixed_dictionaries({k: values[k] for k in keys})
    )
    # Real records with hostile fields, and shapes of hypothesis's own.
    altered = st.tuples(st.sampled_from(renders), changes).map(lambda pair: {**pair[0], **pair[1]})
    made = st.fixed_dictionaries({}, optional={k: values[k] for k in FIELDS})
    data = st.one_of(altered, altered, made, st.none(), st.lists(st.integers(), max_size=2), st.text(max_size=5))
    return st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(EVENT_TYPES), st.text(max_size=10), st.none(), st.integers())},
        optional={
            "data": data,
            "timestamp": times,
            "account_id": companies,
            "company_id": companies,
            "api_version_date": st.one_of(st.just("2026-10-15-1"), st.integers(), st.none()),
            "previous_attributes": st.one_of(st.none(), st.dictionaries(st.text(max_size=5), times, max_size=2)),
        },
    ).map(lambda envelope: {**envelope, "account_id": envelope.get("account_id", COMPANY)})


class Harness:
    def __init__(self, world: World) -> None:
        self.world = world
        self.counter = itertools.count()
        twenty = TwentyDataClient(
            "http://twenty.test",
            TWENTY_KEY,
            requests_per_minute=100_000,
            transport=world.transports.twenty,
            max_attempts=2,
            sleep=_no_sleep,
        )
        self.worker = Worker(world.runtime, twenty=twenty)

    async def store(self, envelope: dict[str, Any]) -> str:
        """As the endpoint stores a delivery whose signature it verified."""
        webhook_id = f"msg_fuzz_{next(self.counter):05d}"
        body = json.dumps(envelope).encode()
        event_type, company_id, text = parse_envelope(body)
        stored = await inbox.store(
            self.world.runtime.store,
            webhook_id=webhook_id,
            event_type=event_type,
            company_id=company_id,
            body=text,
            received_at=datetime.now(UTC),
        )
        assert stored
        return webhook_id

    async def round(self, envelopes: list[dict[str, Any]], good_membership: str) -> None:
        store = self.world.runtime.store
        hostile = [await self.store(e) for e in envelopes]
        status = "past_due" if next(self.counter) % 2 else "active"
        self.world.whop.update_membership(good_membership, status=status)
        good = await self.store(self.world.whop.event("membership.updated", good_membership, COMPANY))

        for _ in range(4):  # events whose backoff came out at ~0 s may be due again at once
            if await self.worker.run_once() == 0:
                break

        mine = {
            e.webhook_id: e for e in await inbox.list_events(store, limit=100_000) if e.webhook_id in {*hostile, good}
        }
        assert mine[good].status == "applied", mine[good]
        shown = [o for o in self.world.opportunities() if o.get("whopMembershipId") == good_membership]
        assert [o["whopMembershipStatus"] for o in shown] == [status.upper()]
        for event in mine.values():
            assert event.status != "processing", event
            if event.status in ("failed", "dead"):
                assert event.last_error and len(event.last_error) < 1000, event.last_error


async def _on_loop(make: Any, *args: Any) -> Any:
    return make(*args)


def test_no_hostile_delivery_breaks_a_worker_pass_or_writes_another_companys_record(tmp_path: Any) -> None:
    loop = asyncio.new_event_loop()
    world = loop.run_until_complete(make_world(tmp_path, members=8, memberships=10))
    try:
        loop.run_until_complete(run_sync(world.runtime, kind="full"))
        whop = world.whop
        memberships = [m.id for m in whop.memberships.values() if m.company_id == COMPANY]
        good_membership, sampled = memberships[0], memberships[1:]
        ours = [
            *sampled,
            *(p.id for p in whop.products.values() if p.company_id == COMPANY),
            *(m.id for m in whop.members.values() if m.company_id == COMPANY),
            *(p.id for p in whop.payments.values() if p.company_id == COMPANY and p.membership_id != good_membership),
        ]
        theirs = [r.id for table in (whop.memberships, whop.products, whop.members) for r in table.values()]
        theirs = [i for i in theirs if i not in ours and i != good_membership]
        # Payments of the ordinary event's membership would share its fate (one record, one write).
        payments = [
            p.id for p in whop.payments.values() if p.company_id == COMPANY and p.membership_id != good_membership
        ]
        products = [p.id for p in whop.products.values() if p.company_id == COMPANY]
        renders = [whop.render(i) for i in [*sampled[:4], *products[:2], *payments[:3], *theirs[:3]]]
        harness = loop.run_until_complete(_on_loop(Harness, world))  # a worker belongs to its loop

        @settings(
            max_examples=50,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        )
        @given(st.lists(_strategies(world, ours, theirs, renders), min_size=1, max_size=4))
        def deliveries(envelopes: list[dict[str, Any]]) -> None:
            loop.run_until_complete(harness.round(envelopes, good_membership))

        deliveries()

        others = set(theirs)
        assert not [o for o in world.opportunities() if o.get("whopMembershipId") in others]
        assert not [p for p in world.products() if p.get("whopProductId") in others]
    finally:
        loop.run_until_complete(world.runtime.aclose())
        loop.close()
