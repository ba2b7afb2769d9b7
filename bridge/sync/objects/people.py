"""Whop members → People (keyed `whopUserId`, the user, or the member of a buyer with no user).

A Person carries the member's fields here; its revenue fields are written apart
(`objects/revenue.py`), and where a buyer came from apart again (`sync/attribution.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.sync import mapping
from bridge.sync.objects.base import SyncedObject
from bridge.sync.records import CompanyItems, fetch_members
from bridge.sync.writer import Item, Problem, WriteReport, WriterFor
from bridge.twenty.data import PERSON
from bridge.whop.client import WhopClient
from bridge.whop.models import Member, Membership


async def build(items: CompanyItems, members: Sequence[Member]) -> list[Item]:
    return await items.people(members)


PEOPLE = SyncedObject[Member](
    kind="member",
    twenty=PERSON,
    id_prefix="mber_",
    events=("member",),
    phase="members",
    select_fields=("whopMemberStatus",),
    list_page=lambda whop: whop.list_members,
    get_one=lambda whop: whop.get_member,
    build=build,
    key=mapping.person_key,
)


async def fetch_missing_people(
    whop: WhopClient, items: CompanyItems, writers: WriterFor, memberships: list[Membership]
) -> tuple[WriteReport | None, list[Problem]]:
    """Memberships whose Person the bridge has not written (its member left, or is listed after
    this page): their members read from Whop and written. The report is None when none was read."""
    members, problems = await fetch_members(whop.get_member, memberships)
    if not members:
        return None, problems
    return await writers(PERSON).write(await build(items, members)), problems
