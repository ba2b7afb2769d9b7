"""Provisioning creates exactly what schema/ declares, is idempotent, and never half-applies."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bridge.config import Settings
from bridge.errors import AuthError
from bridge.runtime import Runtime, Transports
from bridge.services import last_provisioning, provision_workspace
from bridge.twenty.metadata import MetadataClient
from bridge.twenty.provision import provision
from bridge.twenty.schema import load_data_model
from tests.fakes.twenty import FakeTwenty

from .conftest import TWENTY_KEY

PUBLIC_URL = "http://bridge.test"


def field_of(fake: FakeTwenty, obj: str, name: str) -> dict[str, Any] | None:
    for f in fake.object_by_name(obj)["fieldsList"]:
        if f["name"] == name:
            return dict(f)
    return None


async def test_a_fresh_workspace_gets_the_whole_data_model(fake_twenty: FakeTwenty, meta: MetadataClient) -> None:
    model = load_data_model()
    result = await provision(meta, model, PUBLIC_URL)

    assert not result.plan.conflicts
    product = fake_twenty.object_by_name("whopProduct")
    assert product["labelSingular"] == "Whop Product"
    for obj in model.objects:
        for spec in obj.fields:
            live = field_of(fake_twenty, obj.nameSingular, spec.name)
            assert live is not None, f"{obj.nameSingular}.{spec.name} missing"
            assert live["type"] == spec.type
            if spec.unique:
                assert live["isUnique"], f"{obj.nameSingular}.{spec.name} must be unique (upsert key)"
    status = field_of(fake_twenty, "opportunity", "whopMembershipStatus")
    assert status is not None
    assert [o["value"] for o in status["options"]][:2] == ["TRIALING", "ACTIVE"]
    # The relation made both sides.
    assert field_of(fake_twenty, "whopProduct", "opportunities") is not None
    # The Kanban view exists on either dialect; the sidebar link only where Twenty has the API.
    views = await meta.list_views(fake_twenty.object_by_name("opportunity")["id"])
    assert any(v["name"] == "Whop memberships" for v in views)
    link = next(i for i in result.plan.items if i.kind == "link")
    if fake_twenty.dialect == "2.x":
        assert link.status == "create"
        assert any(i["link"] == f"{PUBLIC_URL}/" for i in await meta.list_navigation_links())
    else:
        assert link.status == "manual" and PUBLIC_URL in link.detail


async def test_a_second_run_makes_zero_mutations(fake_twenty: FakeTwenty, meta: MetadataClient) -> None:
    model = load_data_model()
    first = await provision(meta, model, PUBLIC_URL)
    assert first.mutations > 0
    before = fake_twenty.stats["metadata_mutations"]

    second = await provision(meta, model, PUBLIC_URL)

    assert second.mutations == 0
    assert fake_twenty.stats["metadata_mutations"] == before
    assert {i.status for i in second.plan.items} <= {"present", "manual"}


async def test_dry_run_plans_everything_and_changes_nothing(fake_twenty: FakeTwenty, meta: MetadataClient) -> None:
    result = await provision(meta, load_data_model(), PUBLIC_URL, dry_run=True)
    assert result.mutations == 0 and fake_twenty.stats["metadata_mutations"] == 0
    statuses = {i.name: i.status for i in result.plan.items}
    assert statuses["whopProduct"] == "create"
    assert statuses["person.whopUserId"] == "create"
    assert statuses["person"] == "present"


async def test_only_the_gap_is_filled_in_a_partly_provisioned_workspace(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    person_id = fake_twenty.object_by_name("person")["id"]
    opp_id = fake_twenty.object_by_name("opportunity")["id"]
    await meta.create_object(
        {
            "nameSingular": "whopProduct",
            "namePlural": "whopProducts",
            "labelSingular": "Whop Product",
            "labelPlural": "Whop Products",
            "isLabelSyncedWithName": False,
        }
    )
    await meta.create_field(
        {"objectMetadataId": person_id, "type": "TEXT", "name": "whopUserId", "label": "Whop User ID", "isUnique": True}
    )
    await meta.create_field(
        {
            "objectMetadataId": opp_id,
            "type": "SELECT",
            "name": "whopMembershipStatus",
            "label": "Status",
            "options": [{"value": "ACTIVE", "label": "Active", "color": "green", "position": 0}],
        }
    )
    original = field_of(fake_twenty, "opportunity", "whopMembershipStatus")
    assert original is not None
    active_id = original["options"][0]["id"]

    result = await provision(meta, load_data_model(), PUBLIC_URL)

    statuses = {i.name: i.status for i in result.plan.items}
    assert statuses["whopProduct"] == "present"
    assert statuses["person.whopUserId"] == "present"
    assert statuses["opportunity.whopMembershipStatus"] == "add_options"
    assert statuses["person.whopUsername"] == "create"
    updated = field_of(fake_twenty, "opportunity", "whopMembershipStatus")
    assert updated is not None
    by_value = {o["value"]: o for o in updated["options"]}
    assert by_value["ACTIVE"]["id"] == active_id, "existing option ids are kept"
    assert {"TRIALING", "PAST_DUE", "CANCELING"} <= set(by_value)
    assert (await provision(meta, load_data_model(), PUBLIC_URL)).mutations == 0


async def test_a_field_with_another_type_is_a_conflict_and_its_object_is_left_alone(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    opp_id = fake_twenty.object_by_name("opportunity")["id"]
    await meta.create_field(
        {"objectMetadataId": opp_id, "type": "TEXT", "name": "whopMembershipStatus", "label": "Status (text)"}
    )
    fields_before = {f["name"] for f in fake_twenty.object_by_name("opportunity")["fieldsList"]}

    result = await provision(meta, load_data_model(), PUBLIC_URL)

    conflicts = result.plan.conflicts
    assert [c.name for c in conflicts] == ["opportunity.whopMembershipStatus"]
    assert "TEXT" in conflicts[0].detail and "SELECT" in conflicts[0].detail and "never retypes" in conflicts[0].detail
    # Nothing on opportunity was applied, nor the view grouped by the conflicting field.
    assert {f["name"] for f in fake_twenty.object_by_name("opportunity")["fieldsList"]} == fields_before
    assert field_of(fake_twenty, "opportunity", "whopMembershipStatus")["type"] == "TEXT"  # type: ignore[index]
    statuses = {i.name: i.status for i in result.plan.items}
    assert statuses["view Whop memberships"] == "blocked"
    assert statuses["opportunity.whopMembershipId"] == "blocked"
    # Independent objects were still provisioned completely.
    assert statuses["person.whopUserId"] == "create"
    assert field_of(fake_twenty, "person", "whopUserId") is not None


async def test_two_provisioners_racing_end_with_one_complete_data_model(fake_twenty: FakeTwenty) -> None:
    model = load_data_model()

    async def one() -> int:
        async with MetadataClient(
            "http://twenty.test", TWENTY_KEY, transport=httpx.ASGITransport(app=fake_twenty)
        ) as m:
            return (await provision(m, model, PUBLIC_URL)).mutations

    await asyncio.gather(one(), one())
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=httpx.ASGITransport(app=fake_twenty)) as m:
        again = await provision(m, model, PUBLIC_URL)
    assert again.mutations == 0 and not again.plan.conflicts
    names = [f["name"] for f in fake_twenty.object_by_name("person")["fieldsList"]]
    assert names.count("whopUserId") == 1


async def test_a_wrong_api_key_is_a_clear_auth_error(fake_twenty: FakeTwenty) -> None:
    with pytest.raises(AuthError, match="TWENTY_API_KEY") as info:
        async with MetadataClient("http://twenty.test", "wrong-key", transport=httpx.ASGITransport(app=fake_twenty)):
            pass
    assert "wrong-key" not in str(info.value)


async def test_a_key_without_the_data_model_permission_is_told_what_to_fix(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    fake_twenty.data_model_permission = False
    with pytest.raises(AuthError, match="data-model permission"):
        await provision(meta, load_data_model(), PUBLIC_URL)


async def test_the_provisioning_run_is_recorded_in_the_store(
    fake_twenty: FakeTwenty, twenty_transport: httpx.AsyncBaseTransport, settings: Settings
) -> None:
    async with await Runtime.open(settings, transports=Transports(twenty=twenty_transport)) as runtime:
        result = await provision_workspace(runtime)
        recorded = await last_provisioning(runtime.store)
    assert recorded is not None
    assert recorded["status"] == "succeeded"
    assert recorded["dialect"] == fake_twenty.dialect
    assert recorded["mutations"] == result.mutations > 0


async def test_a_name_taken_between_plan_and_apply_is_resolved_by_listing_again(
    fake_twenty: FakeTwenty, meta: MetadataClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process creates the object and a field just before this one does."""
    original_create_object, original_create_field = meta.create_object, meta.create_field
    raced: list[str] = []

    async def create_object_after_a_rival(spec: dict[str, Any]) -> dict[str, Any]:
        await original_create_object(spec)  # the rival wins…
        raced.append(spec["nameSingular"])
        return await original_create_object(spec)  # …and ours answers "already exists"

    async def create_field_after_a_rival(spec: dict[str, Any]) -> Any:
        if spec["name"] == "whopUserId":
            await original_create_field(spec)
            raced.append(spec["name"])
        return await original_create_field(spec)

    monkeypatch.setattr(meta, "create_object", create_object_after_a_rival)
    monkeypatch.setattr(meta, "create_field", create_field_after_a_rival)
    result = await provision(meta, load_data_model(), PUBLIC_URL)

    assert raced == ["whopPayment", "whopProduct", "whopUserId"]  # each custom object, then the field
    assert not result.plan.conflicts
    assert [f["name"] for f in fake_twenty.object_by_name("person")["fieldsList"]].count("whopUserId") == 1
    monkeypatch.undo()
    assert (await provision(meta, load_data_model(), PUBLIC_URL)).mutations == 0
