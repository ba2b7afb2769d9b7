"""What each module of this package declares: one Whop object, and the Twenty object it becomes.

A declaration is data and small functions (in the spirit of a Meltano stream or a Nango sync):
its Twenty object and key, the shadow the bridge keeps of what it wrote, the sync's checkpoint
phase, how Whop is read (a page, one record), which webhook events name it, the SELECT fields
the option guard watches, what marks a record deleted at Whop, and how its records are built.
The sync engine drives pages through the declarations and the worker drives events through
them, both writing with one `Writers` factory (`bridge/sync/writer.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bridge.sync.records import CompanyItems
from bridge.sync.writer import Item, fixed
from bridge.twenty.data import ObjectApi
from bridge.whop.client import WhopClient
from bridge.whop.models import Page

R = TypeVar("R")

Lister = Callable[..., AsyncIterator[Page[Any]]]  # (after=, page_size=) -> pages
Getter = Callable[[str], Awaitable[Any]]  # one record by its Whop id
Build = Callable[[CompanyItems, Sequence[R]], Awaitable[list[Item]]]


@dataclass(frozen=True)
class SyncedObject(Generic[R]):
    """One Whop object as the bridge syncs it into one Twenty object."""

    kind: str  # the Whop kind, as the worker groups the events that name it ("product")
    twenty: ObjectApi  # the Twenty object, and its key field (`twenty.key`)
    shadow: str | None = None  # the shadows of what was written (None: the object's own name)
    id_prefix: str = ""  # the Whop id an event of this kind names starts so
    events: tuple[str, ...] = ()  # webhook event prefixes that name a record of this kind
    hint: type[Any] | None = None  # a payload read as this may stand in for a Whop read (`worker._hint`)
    phase: str | None = None  # the sync's checkpoint phase that writes it (None: not paged)
    reads: tuple[str, ...] = ()  # other checkpoint phases paging it, writing nothing of it
    select_fields: tuple[str, ...] = ()  # SELECT fields holding Whop enums: the option guard's
    deleted: tuple[tuple[str, str], ...] = ()  # the fields that mark a record deleted at Whop
    list_page: Callable[[WhopClient], Lister] | None = None  # how Whop is read, by page
    get_one: Callable[[WhopClient], Getter] | None = None  # and by id
    build: Build[R] | None = None  # Whop records -> writer items (linked by the shadows)
    key: Callable[[R], str] | None = None  # the Twenty key of a record, when it is not its Whop id
    # What is skipped in a workspace provisioned before the Twenty object existed (None: every
    # provisioned workspace has it).
    added_later: str | None = None

    @property
    def shadow_name(self) -> str:
        return self.shadow or self.twenty.singular

    @property
    def phases(self) -> tuple[str, ...]:
        return (self.phase, *self.reads) if self.phase else self.reads

    def unprovisioned(self, objects: Container[str] | None) -> str | None:
        """Why this object is not written to a workspace whose objects are `objects` (None: it
        is, or they are not known): one provisioned before the object existed."""
        if self.added_later is None or objects is None or self.twenty.singular in objects:
            return None
        return f"{self.added_later} skipped: run `provision` to add the {self.twenty.type_prefix} object"

    def deleted_item(self, key: str) -> Item:
        """A record deleted at Whop: only its status changes (the rest stays as last written)."""
        if not self.deleted:
            raise ValueError(f"{self.kind} records are never marked deleted")
        record = {self.twenty.key: key, **dict(self.deleted)}
        return Item(key, record, fixed(record), None)
