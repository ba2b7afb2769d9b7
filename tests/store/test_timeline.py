"""Timeline lines are remembered per company and key, once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.timeline import HeldLine, count_lines, held_lines, record_lines

CO = "biz_1"
AT = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def line(key: str, subject: str, kind: str = "paid", *, activity: str = "tw-1") -> HeldLine:
    return HeldLine(key, subject, kind, AT, AT + timedelta(hours=1), activity)


async def test_lines_are_held_by_subject_and_company(engine: AsyncEngine) -> None:
    await record_lines(
        engine,
        CO,
        [
            line("mem_1:started", "mem_1", "started"),
            line("mem_1:canceled:x", "mem_1", "canceled"),
            line("pay_1:paid", "pay_1"),
        ],
    )
    await record_lines(engine, "biz_2", [line("mem_1:started", "mem_1", "started", activity="tw-other")])

    held = await held_lines(engine, CO, ["mem_1", "pay_1", "pay_none"])
    assert sorted(h.key for h in held["mem_1"]) == ["mem_1:canceled:x", "mem_1:started"]
    assert [h.kind for h in held["pay_1"]] == ["paid"] and "pay_none" not in held
    first = held["pay_1"][0]
    assert (first.happened_at, first.observed_at, first.activity_id) == (AT, AT + timedelta(hours=1), "tw-1")
    assert first.happened_at is not None and first.happened_at.tzinfo is UTC
    assert (await held_lines(engine, "biz_2", ["mem_1"]))["mem_1"][0].activity_id == "tw-other"
    assert await count_lines(engine) == 4 and await count_lines(engine, CO) == 3


async def test_a_line_recorded_twice_or_by_two_writers_at_once_is_one_row(engine: AsyncEngine) -> None:
    many = [line(f"pay_{i}:paid", f"pay_{i}") for i in range(1200)]  # more than one statement's chunk
    await asyncio.gather(record_lines(engine, CO, many), record_lines(engine, CO, many[::-1]))
    await record_lines(engine, CO, [line("pay_7:paid", "pay_7", activity="tw-later")])  # the first stays
    assert await count_lines(engine, CO) == 1200
    held = await held_lines(engine, CO, [f"pay_{i}" for i in range(1200)])
    assert len(held) == 1200 and held["pay_7"][0].activity_id == "tw-1"
