"""An acknowledged webhook delivery survives an OS crash or power loss on SQLite.

Under WAL, `synchronous=NORMAL` commits without syncing the WAL file, so a crash of the machine
(not just of the process) can take back commits the bridge already answered 200 for; `FULL`
syncs the WAL on every commit. SQLite keeps the setting per connection, so every connection
the store hands out must carry it.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from bridge.config import Settings
from bridge.runtime import Runtime
from bridge.store import inbox
from bridge.store.db import utcnow

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


async def test_every_connection_that_stores_deliveries_syncs_each_commit_to_disk(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    async with await Runtime.open(Settings(DATABASE_URL=url)) as runtime:
        engine = runtime.store
        stored = await inbox.store_many(
            engine,
            [
                {
                    "webhook_id": "msg_1",
                    "event_type": "membership.updated",
                    "company_id": None,
                    "body": "{}",
                    "received_at": utcnow(),
                }
            ],
        )
        assert stored == {"msg_1"}
        # Several at once, so the pool opens more than one connection.
        conns = [await engine.connect() for _ in range(4)]
        try:
            modes = [(await c.execute(sa.text("PRAGMA synchronous"))).scalar_one() for c in conns]
            journal = (await conns[0].execute(sa.text("PRAGMA journal_mode"))).scalar_one()
        finally:
            for c in conns:
                await c.close()
    assert journal == "wal"
    assert modes == [FULL] * 4
