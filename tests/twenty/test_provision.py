"""Provisioning creates exactly what schema/ declares, is idempotent, and never half-applies."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bridge.config import Settings
from bridge.errors import AuthError
from bridge.runtime import Runtime, Transports
from bridge.services import provision_workspace
from bridge.store.provisioning_runs import last as last_provisioning
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
    assert any(v.name == "Whop memberships" for v in views)
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
    assert {i.status for i in second.plan.items} <= {"present", "manual", "unsupported"}


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

    assert raced == ["whopPayment", "whopProduct", "whopReview", "whopUserId"]  # each custom object, then the field
    assert not result.plan.conflicts
    assert [f["name"] for f in fake_twenty.object_by_name("person")["fieldsList"]].count("whopUserId") == 1
    monkeypatch.undo()
    assert (await provision(meta, load_data_model(), PUBLIC_URL)).mutations == 0


# How the data reads: card fields, list columns, record-page sections, stage columns ---------


def view_named(fake: FakeTwenty, obj: str, name: str) -> dict[str, Any]:
    object_id = fake.object_by_name(obj)["id"]
    found = [v for v in fake.workspace.views if v["objectMetadataId"] == object_id and v["name"] == name]
    assert len(found) == 1, f"{len(found)} views named {name!r} on {obj}"
    return found[0]


def list_view(fake: FakeTwenty, obj: str) -> dict[str, Any]:
    object_id = fake.object_by_name(obj)["id"]
    return next(v for v in fake.workspace.views if v["objectMetadataId"] == object_id and v["key"] == "INDEX")


def shown(fake: FakeTwenty, view: dict[str, Any], *, visible_only: bool = True) -> list[str]:
    """The view's fields by name, in the order Twenty shows them: by position, the record's name
    first whatever its position (both versions' front ends move it there)."""
    names = {f["id"]: f["name"] for o in fake.workspace.objects for f in o["fieldsList"]}
    fields = sorted((f for f in fake.workspace.view_fields if f["viewId"] == view["id"]), key=lambda f: f["position"])
    out = [names[f["fieldMetadataId"]] for f in fields if f["isVisible"] or not visible_only]
    return sorted(out, key=lambda name: name != "name")  # stable: only the name moves


def record_page(fake: FakeTwenty, obj: str) -> list[tuple[str, list[str]]]:
    """The sections of the object's record page (2.x), in order, each with its fields."""
    ws = fake.workspace
    layout = next(p for p in ws.page_layouts if p["objectMetadataId"] == fake.object_by_name(obj)["id"])
    view_id = layout["tabs"][0]["widgets"][0]["configuration"]["viewId"]
    names = {f["id"]: f["name"] for f in fake.object_by_name(obj)["fieldsList"]}
    sections = sorted((g for g in ws.view_field_groups if g["viewId"] == view_id), key=lambda g: g["position"])
    out = []
    for group in sections:
        fields = sorted(
            (f for f in ws.view_fields if f["viewFieldGroupId"] == group["id"]), key=lambda f: f["position"]
        )
        out.append((group["name"], [names[f["fieldMetadataId"]] for f in fields]))
    return out


async def test_each_membership_card_shows_product_plan_amount_renewal_and_last_payment(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    await provision(meta, load_data_model(), PUBLIC_URL)

    board = view_named(fake_twenty, "opportunity", "Whop memberships")
    assert shown(fake_twenty, board) == [
        "whopProduct",
        "whopPlanTitle",
        "amount",
        "whopRenewalDate",
        "whopLastPaymentStatus",
    ]
    columns = [g["fieldValue"] for g in fake_twenty.workspace.view_groups if g["viewId"] == board["id"]]
    assert {"ACTIVE", "TRIALING", "CANCELED", "EXPIRED"} <= set(columns)


async def test_a_kanban_an_earlier_version_made_without_card_fields_gets_them_and_is_not_duplicated(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    model = load_data_model()
    await provision(meta, model.model_copy(update={"views": (), "columns": (), "sections": ()}), PUBLIC_URL)
    opportunity = fake_twenty.object_by_name("opportunity")
    status = field_of(fake_twenty, "opportunity", "whopMembershipStatus")
    assert status is not None
    await meta.create_kanban_view(
        object_id=opportunity["id"],
        name="Whop memberships",
        icon="IconLayoutKanban",
        group_field_id=status["id"],
        group_values=[o["value"] for o in status["options"]],
    )
    assert shown(fake_twenty, view_named(fake_twenty, "opportunity", "Whop memberships")) == []

    result = await provision(meta, model, PUBLIC_URL)

    statuses = {i.name: i.status for i in result.plan.items}
    assert statuses["view Whop memberships"] == "present"
    assert statuses["cards Whop memberships"] == "create"
    assert "whopLastPaymentStatus" in shown(fake_twenty, view_named(fake_twenty, "opportunity", "Whop memberships"))


async def test_payment_and_product_lists_open_on_their_useful_columns(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    await provision(meta, load_data_model(), PUBLIC_URL)

    # Twenty 2.21 shows a new object's system columns and files each new field hidden: the
    # bridge's columns come right after the name, Twenty's own after them.
    twentys_own = ["createdAt", "createdBy", "updatedAt", "updatedBy"] if fake_twenty.dialect == "2.x" else []
    payments = list_view(fake_twenty, "whopPayment")
    assert payments["name"] == "All Whop Payments"
    assert shown(fake_twenty, payments) == [
        "name",
        "paymentStatus",
        "amount",
        "netAmount",
        "paidAt",
        "person",
        "opportunity",
        "whopCompanyName",
        *twentys_own,
    ]
    assert shown(fake_twenty, list_view(fake_twenty, "whopProduct")) == [
        "name",
        "memberCount",
        "visibility",
        "whopCompanyName",
        *twentys_own,
    ]
    name = field_of(fake_twenty, "whopPayment", "name")
    assert name is not None
    (column,) = [
        f
        for f in fake_twenty.workspace.view_fields
        if f["viewId"] == payments["id"] and f["fieldMetadataId"] == name["id"]
    ]
    assert column["size"] == 320, "a payment's name reads whole in the list"


async def test_the_standard_lists_show_the_whop_columns_first_without_moving_the_ones_people_arranged(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    people = list_view(fake_twenty, "person")
    ws = fake_twenty.workspace
    city = next(f for f in ws.view_fields if f["viewId"] == people["id"] and f["isVisible"] and f["position"] == 5)
    ws.update_view_field(city["id"], {"isVisible": False})  # a person hid a column
    before = shown(fake_twenty, people, visible_only=False)
    before_visible = shown(fake_twenty, people)
    positions = {f["id"]: f["position"] for f in ws.view_fields if f["viewId"] == people["id"]}

    await provision(meta, load_data_model(), PUBLIC_URL)

    after = shown(fake_twenty, people, visible_only=False)
    added = ["whopMemberStatus", "whopLifetimeValue", "whopActiveMemberships", "whopLastPurchaseAt"]
    # 2.x: right after the e-mails; 1.x keeps positions as integers, so right after the name.
    cut = 2 if fake_twenty.dialect == "2.x" else 1
    mine = before[:cut] + added + before[cut:]
    assert after[: len(mine)] == mine, "name (e-mails), then the Whop columns, then the rest"
    assert shown(fake_twenty, people) == before_visible[:cut] + added + before_visible[cut:], "the hidden one stays"
    now = {f["id"]: f["position"] for f in ws.view_fields if f["viewId"] == people["id"]}
    assert all(now[i] == p for i, p in positions.items()), "no existing column moved"
    opportunities = shown(fake_twenty, list_view(fake_twenty, "opportunity"))
    assert opportunities[:7] == [
        "name",
        "whopMembershipStatus",
        "whopProduct",
        "whopMrr",
        "whopRenewalDate",
        "whopLastPaymentStatus",
        "whopPlanTitle",
    ]
    assert opportunities[7] == "amount"


async def test_each_list_shows_the_declared_columns_twenty_added_hidden_when_it_created_the_fields(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    """Twenty 2.21 puts every new field in its object's list view, hidden: "All Whop Payments"
    showed none of the payment fields until provisioning showed the declared ones."""
    model = load_data_model()
    await provision(meta, model, PUBLIC_URL)
    for columns in model.columns:
        listed = shown(fake_twenty, list_view(fake_twenty, columns.object))
        # Where they go (the first screen) is test_the_standard_lists_show_…'s concern.
        assert [f for f in listed if f in columns.fields] == list(columns.fields), columns.object
    payments = shown(fake_twenty, list_view(fake_twenty, "whopPayment"))
    assert "declineReason" not in payments, "only the declared columns are shown"

    again = await provision(meta, model, PUBLIC_URL)
    assert again.mutations == 0


async def test_a_whop_column_a_person_hid_stays_hidden(fake_twenty: FakeTwenty, meta: MetadataClient) -> None:
    model = load_data_model()
    await provision(meta, model, PUBLIC_URL)
    people = list_view(fake_twenty, "person")
    ltv = field_of(fake_twenty, "person", "whopLifetimeValue")
    assert ltv is not None
    ws = fake_twenty.workspace
    column = next(f for f in ws.view_fields if f["viewId"] == people["id"] and f["fieldMetadataId"] == ltv["id"])
    ws.update_view_field(column["id"], {"isVisible": False})

    again = await provision(meta, model, PUBLIC_URL)

    assert again.mutations == 0
    assert "whopLifetimeValue" not in shown(fake_twenty, people)
    assert "whopLifetimeValue" in shown(fake_twenty, people, visible_only=False)


async def test_the_record_pages_get_a_whop_section_before_system(fake_twenty: FakeTwenty, meta: MetadataClient) -> None:
    model = load_data_model()
    result = await provision(meta, model, PUBLIC_URL)

    items = {i.name: i for i in result.plan.items}
    if fake_twenty.dialect == "1.x":
        # 1.x record pages have no sections: the plan says so and nothing is attempted.
        assert items["section person Whop"].status == "unsupported"
        assert "no record-page sections" in items["section person Whop"].detail
        return
    for obj in ("person", "opportunity"):
        page = record_page(fake_twenty, obj)
        names = [name for name, _ in page]
        assert names[-2:] == ["Whop", "System"], "Whop sits just before System, which stays last"
        whop = dict(page)["Whop"]
        declared = [f.name for f in model.object(obj).fields if not f.standard]
        assert [n for n in whop if n in declared] == declared, f"{obj}: every Whop field, in schema/ order"
        assert dict(page)["System"] == ["createdAt", "updatedAt", "createdBy"], "System keeps only its own"
    # The inverse relations Twenty made on the standard objects are in the section too.
    assert "whopPayments" in dict(record_page(fake_twenty, "person"))["Whop"]


async def test_an_older_install_gets_its_whop_fields_moved_out_of_system(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    if fake_twenty.dialect == "1.x":
        pytest.skip("1.x record pages have no sections")
    model = load_data_model()
    await provision(meta, model.model_copy(update={"sections": ()}), PUBLIC_URL)  # before sections existed
    assert "whopUserId" in dict(record_page(fake_twenty, "person"))["System"], "Twenty parks new fields there"
    # A person moved one Whop field to General by hand; it stays where they put it.
    ws = fake_twenty.workspace
    page = next(p for p in ws.page_layouts if p["objectMetadataId"] == fake_twenty.object_by_name("person")["id"])
    view_id = page["tabs"][0]["widgets"][0]["configuration"]["viewId"]
    general = next(g for g in ws.view_field_groups if g["viewId"] == view_id and g["name"] == "General")
    username = field_of(fake_twenty, "person", "whopUsername")
    assert username is not None
    moved = next(f for f in ws.view_fields if f["viewId"] == view_id and f["fieldMetadataId"] == username["id"])
    ws.update_view_field(moved["id"], {"viewFieldGroupId": general["id"]})

    result = await provision(meta, model, PUBLIC_URL)

    assert {i.name: i.status for i in result.plan.items}["section person Whop"] == "create"
    sections = dict(record_page(fake_twenty, "person"))
    assert "whopUsername" in sections["General"]
    assert "whopUserId" in sections["Whop"] and "whopChurnedAt" in sections["Whop"]
    assert sections["System"] == ["createdAt", "updatedAt", "createdBy"]
    assert [name for name, _ in record_page(fake_twenty, "person")][-2:] == ["Whop", "System"]
    assert (await provision(meta, model, PUBLIC_URL)).mutations == 0


async def test_a_field_a_person_adds_later_lands_under_system_not_whop(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    if fake_twenty.dialect == "1.x":
        pytest.skip("1.x record pages have no sections")
    await provision(meta, load_data_model(), PUBLIC_URL)
    person_id = fake_twenty.object_by_name("person")["id"]
    await meta.create_field({"objectMetadataId": person_id, "type": "TEXT", "name": "shoeSize", "label": "Shoe size"})

    sections = dict(record_page(fake_twenty, "person"))
    assert "shoeSize" in sections["System"] and "shoeSize" not in sections["Whop"]


async def test_ended_memberships_have_a_churned_stage_and_a_column_for_it(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    before = field_of(fake_twenty, "opportunity", "stage")
    assert before is not None
    kept = {o["value"]: o for o in before["options"]}

    result = await provision(meta, load_data_model(), PUBLIC_URL)

    assert {i.name: i.status for i in result.plan.items}["opportunity.stage"] == "add_options"
    after = field_of(fake_twenty, "opportunity", "stage")
    assert after is not None
    by_value = {o["value"]: o for o in after["options"]}
    assert by_value["CHURNED"]["label"] == "Churned"
    for value, option in kept.items():  # Twenty's own stages are untouched, ids and all
        assert {k: by_value[value][k] for k in ("id", "label", "color", "position")} == {
            k: option[k] for k in ("id", "label", "color", "position")
        }
    assert after["type"] == "SELECT" and not after["isCustom"], "the standard field, not a new one"
    # Twenty's "By Stage" board gets a Churned column (2.x makes it, 1.x needs the bridge to).
    board = view_named(fake_twenty, "opportunity", "By Stage")
    columns = [g["fieldValue"] for g in fake_twenty.workspace.view_groups if g["viewId"] == board["id"]]
    assert columns.count("CHURNED") == 1 and columns[: len(kept)] == [
        o["value"] for o in sorted(kept.values(), key=lambda o: o["position"])
    ]
    assert (await provision(meta, load_data_model(), PUBLIC_URL)).mutations == 0


async def test_a_kanban_gets_a_column_for_a_status_option_added_later(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    model = load_data_model()
    status = model.object("opportunity").field("whopMembershipStatus")
    assert status.options is not None
    older = model.model_copy(
        update={
            "objects": tuple(
                o.model_copy(
                    update={
                        "fields": tuple(
                            f.model_copy(update={"options": status.options[:-1]}) if f is status else f
                            for f in o.fields
                        )
                    }
                )
                for o in model.objects
            )
        }
    )
    await provision(meta, older, PUBLIC_URL)
    newest = status.options[-1].value

    result = await provision(meta, model, PUBLIC_URL)

    board = view_named(fake_twenty, "opportunity", "Whop memberships")
    columns = [g["fieldValue"] for g in fake_twenty.workspace.view_groups if g["viewId"] == board["id"]]
    assert columns.count(newest) == 1
    kanban_items = [i for i in result.plan.items if i.kind == "view_groups"]
    if fake_twenty.dialect == "1.x":
        assert [i.name for i in kanban_items] == ["kanban columns Whop memberships"]
    else:  # 2.x makes the column itself when the option is added
        assert kanban_items == []
    assert (await provision(meta, model, PUBLIC_URL)).mutations == 0


async def test_the_dry_run_lists_what_the_views_will_get(fake_twenty: FakeTwenty, meta: MetadataClient) -> None:
    result = await provision(meta, load_data_model(), PUBLIC_URL, dry_run=True)

    assert fake_twenty.stats["metadata_mutations"] == 0
    items = {i.name: i for i in result.plan.items}
    assert items["cards Whop memberships"].status == "create"
    assert "whopLastPaymentStatus" in items["cards Whop memberships"].detail
    assert items["columns person"].status == "create" and "'All People'" in items["columns person"].detail
    assert items["columns whopPayment"].status == "create"
    section = items["section opportunity Whop"]
    if fake_twenty.dialect == "2.x":
        assert section.status == "create" and "create the section 'Whop'" in section.detail
    else:
        assert section.status == "unsupported"


async def test_a_conflict_on_opportunity_blocks_its_view_items_too(
    fake_twenty: FakeTwenty, meta: MetadataClient
) -> None:
    opp_id = fake_twenty.object_by_name("opportunity")["id"]
    await meta.create_field({"objectMetadataId": opp_id, "type": "TEXT", "name": "whopMrr", "label": "MRR (text)"})
    views_before = len(fake_twenty.workspace.view_fields)

    result = await provision(meta, load_data_model(), PUBLIC_URL)

    statuses = {i.name: i.status for i in result.plan.items}
    assert statuses["cards Whop memberships"] == "blocked"
    assert statuses["columns opportunity"] == "blocked"
    assert statuses["columns person"] == "create"
    opportunity_views = {v["id"] for v in fake_twenty.workspace.views if v["objectMetadataId"] == opp_id}
    added = fake_twenty.workspace.view_fields[views_before:]
    assert not [f for f in added if f["viewId"] in opportunity_views and "whop" in str(f)], "nothing on opportunity"
