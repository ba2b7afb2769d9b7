"""The payment fold has one rule, and the sync and the webhook worker write the same records."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.services import run_sync
from bridge.store.shadows import Shadow, get_shadows
from bridge.sync.records import LastPayment, fold_payments, payment_time
from bridge.whop.models import Payment
from tests.sync.conftest import COMPANY
from tests.test_worker import Bridge, _bridge

T0 = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)


def pay(pid: str, at: datetime | None, *, membership: str | None = "mem_a", status: str = "paid") -> Payment:
    return Payment(id=pid, membership_id=membership, status=status, paid_at=at, total="10.00", currency="usd")


def held(pid: str, at: datetime | None, membership: str = "mem_a") -> dict[str, LastPayment]:
    return {membership: LastPayment.of(pay(pid, at, membership=membership), membership)}


def winner(payments: list[Payment], *known: dict[str, LastPayment]) -> str | None:
    changed = fold_payments(payments, *known)
    return changed["mem_a"].payment_id if "mem_a" in changed else None


# (case, payments in arrival order, what the bridge already holds, the payment that becomes last)
FOLD_CASES: list[tuple[str, list[Payment], list[dict[str, LastPayment]], str | None]] = [
    ("later time wins", [pay("pay_b", T0), pay("pay_a", LATER)], [], "pay_a"),
    ("later time wins over the held one", [pay("pay_b", LATER)], [held("pay_a", T0)], "pay_b"),
    ("an older payment leaves the held one", [pay("pay_b", T0)], [held("pay_a", LATER)], None),
    ("equal time: the greater id wins", [pay("pay_b", T0), pay("pay_a", T0)], [], "pay_b"),
    ("equal time: a lesser id leaves the held one", [pay("pay_a", T0)], [held("pay_b", T0)], None),
    ("equal time: a greater id replaces the held one", [pay("pay_b", T0)], [held("pay_a", T0)], "pay_b"),
    (
        "the same payment read again replaces itself",
        [pay("pay_a", T0, status="refunded")],
        [held("pay_a", T0)],
        "pay_a",
    ),
    ("the same payment read again unchanged is no change", [pay("pay_a", T0)], [held("pay_a", T0)], None),
    ("a timed payment beats an untimed one", [pay("pay_z", None), pay("pay_a", T0)], [], "pay_a"),
    ("an untimed payment leaves a held timed one", [pay("pay_z", None)], [held("pay_a", T0)], None),
    ("a timed payment replaces a held untimed one", [pay("pay_a", T0)], [held("pay_z", None)], "pay_a"),
    ("two untimed payments: the greater id wins", [pay("pay_b", None), pay("pay_a", None)], [], "pay_b"),
    ("an untimed payment with nothing held counts", [pay("pay_a", None)], [], "pay_a"),
    ("it must beat every holding", [pay("pay_b", T0)], [held("pay_a", T0 - timedelta(1)), held("pay_c", T0)], None),
    ("a payment of no membership is left out", [pay("pay_a", T0, membership=None)], [], None),
]


@pytest.mark.parametrize(("payments", "known", "expected"), [c[1:] for c in FOLD_CASES], ids=[c[0] for c in FOLD_CASES])
def test_the_fold_picks_the_last_payment_by_one_rule(
    payments: list[Payment], known: list[dict[str, LastPayment]], expected: str | None
) -> None:
    assert winner(payments, *known) == expected


@pytest.mark.parametrize(
    "times",
    [[T0, T0, T0], [T0, LATER, T0], [None, None, T0], [None, None, None]],
    ids=["all equal", "one later", "one timed", "none timed"],
)
def test_the_fold_gives_the_same_answer_in_every_arrival_order_and_batching(times: list[datetime | None]) -> None:
    payments = [pay(f"pay_{n}", at) for n, at in enumerate(times)]
    answers = set()
    for order in itertools.permutations(payments):
        answers.add(winner(list(order)))  # one page (the sync) or one group of events (the worker)
        kept: dict[str, LastPayment] = {}
        for p in order:  # one at a time, each against what the bridge holds (events one by one)
            kept |= fold_payments([p], kept)
        answers.add(kept["mem_a"].payment_id)
    assert len(answers) == 1


def test_the_fold_keeps_one_payment_per_membership() -> None:
    changed = fold_payments([pay("pay_a", T0, membership="mem_1"), pay("pay_b", LATER, membership="mem_2")])
    assert {k: v.payment_id for k, v in changed.items()} == {"mem_1": "pay_a", "mem_2": "pay_b"}
    assert changed["mem_1"].fields["_paymentId"] == "pay_a"
    assert changed["mem_1"].shadow_row().whop_updated_at == T0


def test_a_payment_listed_again_as_its_shadow_holds_it_is_no_change() -> None:
    last = LastPayment.of(pay("pay_a", T0), "mem_a")
    stored = json.loads(json.dumps(last.fields, sort_keys=True, default=str))  # as put_shadows stores it
    shadow = Shadow(COMPANY, "payment", "mem_a", None, "h", T0, stored, T0, None, None)
    assert fold_payments([pay("pay_a", T0)], {"mem_a": LastPayment.from_shadow(shadow)}) == {}


def test_payment_time_is_paid_then_attempted_then_updated_then_created() -> None:
    times = {"paid_at": T0, "last_payment_attempt_at": LATER, "updated_at": LATER, "created_at": LATER}
    fields = ["paid_at", "last_payment_attempt_at", "updated_at", "created_at"]
    for n, name in enumerate(fields):
        p = Payment(id="pay_a", **{f: times[f] for f in fields[n:]})
        assert payment_time(p) == times[name]
    assert payment_time(Payment(id="pay_a")) is None


# The sync and the worker agree ----------------------------------------------------------------


@pytest.fixture
async def bridge(tmp_path: Any) -> AsyncIterator[Bridge]:
    async for b in _bridge(tmp_path):
        yield b


async def _membership_id(b: Bridge, n: int) -> str:
    return str((await b.world.whop_lists())["memberships"][n].id)


async def _held_payment_id(b: Bridge, membership_id: str) -> str:
    shadows = await get_shadows(b.store, COMPANY, "payment", [membership_id])
    return str(shadows[membership_id].written["_paymentId"])


def _add_payment(b: Bridge, membership_id: str, pid: str, at: datetime, total: str) -> None:
    b.world.whop.add_payment(membership_id, id=pid, status="paid", total=total, created_at=at, paid_at=at)


async def test_equal_time_payments_the_worker_keeps_the_one_the_sync_chose_and_writes_nothing(bridge: Bridge) -> None:
    membership_id = await _membership_id(bridge, 7)
    _add_payment(bridge, membership_id, "pay_tieaaaaaaaaaa", T0, "10.00")
    _add_payment(bridge, membership_id, "pay_tiezzzzzzzzzz", T0, "20.00")
    await run_sync(bridge.world.runtime, kind="reconcile")
    by_sync = bridge.opportunity(membership_id)
    assert by_sync["whopLastPaymentAmount"]["amountMicros"] == 20_000_000, "equal times: the greater id"
    bridge.world.twenty.reset_stats()

    # Each payment delivered on its own, then both together: neither order moves the choice.
    worker = bridge.worker()
    for n, pids in enumerate(
        [["pay_tieaaaaaaaaaa"], ["pay_tiezzzzzzzzzz"], ["pay_tieaaaaaaaaaa", "pay_tiezzzzzzzzzz"]]
    ):
        for pid in pids:
            await bridge.deliver("payment.succeeded", pid, webhook_id=f"msg_tie_{n}_{pid}")
        await worker.run_once()

    assert await _held_payment_id(bridge, membership_id) == "pay_tiezzzzzzzzzz"
    assert bridge.opportunity(membership_id) == by_sync, "the worker built the record the sync wrote"
    assert bridge.world.twenty.stats["data_writes"] == 0, "no opportunity (or anything else) was written"


async def test_a_payment_applied_by_the_worker_is_the_record_the_next_sync_would_write(bridge: Bridge) -> None:
    membership_id = await _membership_id(bridge, 8)
    _add_payment(bridge, membership_id, "pay_workerfirst00", LATER, "33.00")
    await bridge.deliver("payment.succeeded", "pay_workerfirst00", webhook_id="msg_pay_worker_first")
    await bridge.worker().run_once()
    by_worker = bridge.opportunity(membership_id)
    assert by_worker["whopLastPaymentAmount"]["amountMicros"] == 33_000_000, "the later payment wins"
    bridge.world.twenty.reset_stats()

    result = await run_sync(bridge.world.runtime, kind="reconcile")

    assert result.counts["opportunity"].get("updated", 0) == 0
    assert bridge.opportunity(membership_id) == by_worker, "the sync built the record the worker wrote"
    # (The new payment also changed its member at Whop, so the sync may update the Person.)
    operations = bridge.world.twenty.stats["operations"]
    assert [op for op in operations if "Opportunit" in op and op.startswith(("create", "update"))] == []
    assert await _held_payment_id(bridge, membership_id) == "pay_workerfirst00"
