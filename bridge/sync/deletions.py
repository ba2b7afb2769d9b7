"""A person's deletion wins: records soft-deleted in Twenty stay deleted.

Twenty 2.x restores a soft-deleted record when an upsert matches it, and 1.x silently stores
nothing (docs/twenty-observed.md). So the bridge reads, per object, which of its records are
deleted in Twenty (one filtered read each: usually empty), keeps that set in the store, and the
writer leaves those keys out unless BRIDGE_RESTORE_DELETED is set. Each deletion is reported
once, the first time it is seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import deleted
from bridge.sync.writer import Problem
from bridge.twenty.data import OBJECTS, TwentyDataClient

log = logging.getLogger(__name__)

# A process looks again at most this often (each sync run and each worker pass ask first).
WORKER_INTERVAL_SECONDS = 60.0


async def refresh(twenty: TwentyDataClient, store: AsyncEngine, *, restore: bool) -> list[Problem]:
    """Read what is deleted in Twenty now, in one request for every object the bridge writes;
    a Problem for each record not reported before."""
    rules = await twenty.write_rules()
    objects = [obj for name, obj in OBJECTS.items() if name in rules.known_fields]  # provisioned ones
    found = await twenty.find_deleted(objects)
    problems: list[Problem] = []
    what = "restored by the next write (BRIDGE_RESTORE_DELETED)" if restore else "left deleted"
    for obj in objects:
        rows = found.get(obj.singular, [])
        new = await deleted.replace(store, obj.singular, [(str(r.get(obj.key) or ""), str(r["id"])) for r in rows])
        for key in new:
            problems.append(
                Problem(obj.singular, key, f"deleted in Twenty by a person; {what}", kind="deleted_in_twenty")
            )
        if new:
            log.info("%d %s record(s) deleted in Twenty: %s", len(new), obj.singular, what)
    return problems


class DeletionWatch:
    """When this process last looked (the runtime holds one): a sync and the worker that run
    moments apart share one look, and neither looks more often than once a minute (one call).
    What is left open: a record deleted in Twenty and changed at Whop within the same minute."""

    def __init__(self, interval: float = WORKER_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = self.clock()
            if self._checked_at is not None and now - self._checked_at < self.interval:
                return False
            self._checked_at = now
            return True

    async def maybe_refresh(self, twenty: TwentyDataClient, store: AsyncEngine, *, restore: bool) -> list[Problem]:
        if not self.due():
            return []
        try:
            return await refresh(twenty, store, restore=restore)
        except BaseException:
            with self._lock:
                self._checked_at = None  # look again next time
            raise
