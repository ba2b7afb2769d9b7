"""The payment fold both paths keep last payments with (bridge/sync/objects/payments.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.db import create_engine
from bridge.store.migrate import migrate
from bridge.sync.objects.payments import fold
from bridge.sync.records import PAYMENT_SHADOW, LastPayment, held_payments
from bridge.whop.models import Payment

T0 = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)
COMPANY = "biz_fold"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite:///{tmp_path}/bridge.db"
    await migrate(url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


def pay(pid: str, at: datetime, membership: str | None = "mem_a") -> Payment:
    return Payment(id=pid, membership_id=membership, status="paid", paid_at=at, total="10.00", currency="usd")


async def test_the_last_payments_are_kept_in_the_shadows_and_a_payment_read_again_changes_nothing(
    store: AsyncEngine,
) -> None:
    page = [pay("pay_1", T0), pay("pay_2", T0 + timedelta(hours=1)), pay("pay_3", T0, membership=None)]
    changed = await fold(store, COMPANY, page)
    assert {k: v.payment_id for k, v in changed.items()} == {"mem_a": "pay_2"}
    held = await held_payments(store, COMPANY, ["mem_a"])
    assert held["mem_a"].payment_id == "pay_2"
    assert await fold(store, COMPANY, page) == {}  # read again exactly as held
    assert await fold(store, COMPANY, [pay("pay_0", T0 - timedelta(days=1))]) == {}  # older: held stands


async def test_a_dry_run_keeps_them_in_its_memo_and_stores_nothing(store: AsyncEngine) -> None:
    memo: dict[str, LastPayment] = {}
    changed = await fold(store, COMPANY, [pay("pay_1", T0)], memo)
    assert memo == changed and memo["mem_a"].payment_id == "pay_1"
    assert await held_payments(store, COMPANY, ["mem_a"]) == {}
    # The memo is weighed as the shadows are: an older payment does not displace it.
    assert await fold(store, COMPANY, [pay("pay_0", T0 - timedelta(hours=1))], memo) == {}
    assert memo["mem_a"].payment_id == "pay_1"
    assert PAYMENT_SHADOW == "payment"
