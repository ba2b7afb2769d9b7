"""SELECT options a write needs: a Whop status Twenty does not list yet is added, not refused.

The sync and the worker write through one guard each (every writer `Writers` makes calls it
first), so a new Whop status is added the moment either meets it. The fields watched are the
ones each object module (`bridge/sync/objects/`) declares. Options are only ever added: before an update, the
field's options are read again, so an option another process added since is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from bridge.errors import AuthError
from bridge.sync.objects import SELECT_FIELDS as SELECT_FIELDS  # each object module declares its own
from bridge.twenty.metadata import LiveObject, MetadataClient
from bridge.twenty.provision import merge_option_values

log = logging.getLogger(__name__)


class OptionGuard:
    """Adds SELECT options Twenty does not know yet (a new Whop status) before a write needs them.

    Given an open metadata client (a sync), it uses that one; given an `opener` (the worker), it
    opens a client only when it must read or add options, and reads them on first use.
    """

    def __init__(
        self, meta: MetadataClient | None = None, *, opener: Callable[[], MetadataClient] | None = None
    ) -> None:
        self.meta = meta
        self._opener = opener
        self._known: dict[tuple[str, str], tuple[dict[str, Any], ...]] = {}
        self._ids: dict[tuple[str, str], str] = {}
        self._loaded = False
        self._disabled = meta is None and opener is None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[MetadataClient]:
        if self.meta is not None:
            yield self.meta
            return
        assert self._opener is not None
        async with self._opener() as meta:
            yield meta

    async def load(self) -> dict[str, LiveObject] | None:
        """Read the live SELECT options; returns the live objects for other uses of them."""
        if self._disabled:
            return None
        async with self._client() as meta:
            live = await meta.list_objects()
        self._learn(live)
        return live

    def _learn(self, live: dict[str, LiveObject]) -> None:
        for obj, fields in SELECT_FIELDS.items():
            spec = live.get(obj)
            for name in fields:
                f = spec.fields.get(name) if spec is not None else None
                if f is not None:
                    self._known[(obj, name)] = f.options
                    self._ids[(obj, name)] = f.id
        self._loaded = True

    def _missing(self, obj: str, records: list[dict[str, Any]]) -> dict[str, list[str]]:
        """Per field, the values these records carry that its options lack."""
        missing: dict[str, list[str]] = {}
        for name in SELECT_FIELDS.get(obj, ()):
            known = self._known.get((obj, name))
            if known is None:
                continue  # not provisioned (or not a SELECT here): the write says what is wrong
            have = {o.get("value") for o in known}
            new = sorted({r[name] for r in records if r.get(name) and r[name] not in have})
            if new:
                missing[name] = new
        return missing

    async def ensure(self, obj: str, records: list[dict[str, Any]]) -> None:
        if self._disabled or obj not in SELECT_FIELDS:
            return
        async with self._lock:
            try:
                if not self._loaded:
                    await self.load()
                if not self._missing(obj, records):
                    return
                async with self._client() as meta:
                    self._learn(await meta.list_objects())  # as Twenty has them now
                    for name, new in self._missing(obj, records).items():
                        wanted = [(v, v.replace("_", " ").capitalize()[:63], "gray") for v in new]
                        options = merge_option_values(self._known[(obj, name)], wanted)
                        await meta.update_options(self._ids[(obj, name)], options, name=f"{obj}.{name}")
                        log.info("added options %s to %s.%s", new, obj, name)
                        self._known[(obj, name)] = tuple(options)
            except AuthError as exc:  # a key without metadata rights: the write reports the value
                log.warning("cannot add options to %s: %s", obj, exc)
                self._disabled = True
