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
from bridge.twenty.data import TwentyDataClient
from bridge.twenty.metadata import LiveField, MetadataClient
from bridge.twenty.provision import _field_conflict, _missing_options, provision
from bridge.twenty.schema import FieldSpec, load_data_model
from bridge.twenty.view_records import ViewRecordsApi
from fakes.twenty import FakeTwenty, view_records
from fakes.twenty.workspace import later_than

from .conftest import TWENTY_KEY

PUBLIC_URL = "http://bridge.test"


def field_of(fake: FakeTwenty, obj: str, name: str) -> dict[str, Any] | None:
    for f in fake.object_by_name(obj)["fieldsList"]:
        if f["name"] == name:
            return dict(f)
    return None


async def test_a_fresh_workspace_gets_the_whole_data_model(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    model = load_data_model()
    result = await provision(meta, model, PUBLIC_URL, view_records=views)

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
    # The Kanban view exists on either dialect (where its screens show views: 1.x's view
    # records); the sidebar link only where Twenty has the API.
    listed = await (meta if fake_twenty.dialect == "2.x" else views).list_views(
        fake_twenty.object_by_name("opportunity")["id"]
    )
    assert any(v.name == "Whop memberships" and v.type == "KANBAN" for v in listed)
    link = next(i for i in result.plan.items if i.kind == "link")
    if fake_twenty.dialect == "2.x":
        assert link.status == "create"
        assert any(i["link"] == f"{PUBLIC_URL}/" for i in await meta.list_navigation_links())
    else:
        assert link.status == "manual" and PUBLIC_URL in link.detail


async def test_a_second_run_makes_zero_mutations(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    model = load_data_model()
    first = await provision(meta, model, PUBLIC_URL, view_records=views)
    assert first.mutations > 0
    before = fake_twenty.stats["metadata_mutations"]

    second = await provision(meta, model, PUBLIC_URL, view_records=views)

    assert second.mutations == 0
    assert fake_twenty.stats["metadata_mutations"] == before
    assert {i.status for i in second.plan.items} <= {"present", "manual", "unsupported"}


async def test_dry_run_plans_everything_and_changes_nothing(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    result = await provision(meta, load_data_model(), PUBLIC_URL, dry_run=True, view_records=views)
    assert result.mutations == 0 and fake_twenty.stats["metadata_mutations"] == 0
    statuses = {i.name: i.status for i in result.plan.items}
    assert statuses["whopProduct"] == "create"
    assert statuses["person.whopUserId"] == "create"
    assert statuses["person"] == "present"


async def test_only_the_gap_is_filled_in_a_partly_provisioned_workspace(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
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

    result = await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)

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
    assert (await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)).mutations == 0


async def test_a_field_with_another_type_is_a_conflict_and_its_object_is_left_alone(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    opp_id = fake_twenty.object_by_name("opportunity")["id"]
    await meta.create_field(
        {"objectMetadataId": opp_id, "type": "TEXT", "name": "whopMembershipStatus", "label": "Status (text)"}
    )
    fields_before = {f["name"] for f in fake_twenty.object_by_name("opportunity")["fieldsList"]}

    result = await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)

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
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    fake_twenty.data_model_permission = False
    with pytest.raises(AuthError, match="data-model permission"):
        await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)


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
    fake_twenty: FakeTwenty, meta: MetadataClient, monkeypatch: pytest.MonkeyPatch, views: ViewRecordsApi
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
    result = await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)

    assert raced == ["whopPayment", "whopProduct", "whopReview", "whopUserId"]  # each custom object, then the field
    assert not result.plan.conflicts
    assert [f["name"] for f in fake_twenty.object_by_name("person")["fieldsList"]].count("whopUserId") == 1
    monkeypatch.undo()
    assert (await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)).mutations == 0


# How the data reads: card fields, list columns, record-page sections, stage columns ---------


def views_of(fake: FakeTwenty, obj: str) -> list[dict[str, Any]]:
    """The object's views as its screens show them: 2.x's (metadata), 1.x's view records (data
    API; 1.x's core views are shown nowhere). The dicts are the workspace's own."""
    object_id = fake.object_by_name(obj)["id"]
    if fake.dialect == "1.x":
        return view_records.views_of(fake.workspace, object_id)
    return [v for v in fake.workspace.views if v["objectMetadataId"] == object_id]


def view_named(fake: FakeTwenty, obj: str, name: str) -> dict[str, Any]:
    found = [v for v in views_of(fake, obj) if v["name"] == name]
    assert len(found) == 1, f"{len(found)} views named {name!r} on {obj}"
    return found[0]


def list_view(fake: FakeTwenty, obj: str) -> dict[str, Any]:
    return next(v for v in views_of(fake, obj) if v["key"] == "INDEX")


def view_fields(fake: FakeTwenty, view: dict[str, Any]) -> list[dict[str, Any]]:
    """The view's columns (or card fields), the workspace's own dicts, by position."""
    if fake.dialect == "1.x":
        found = view_records.fields_of(fake.workspace, view["id"])
    else:
        found = [f for f in fake.workspace.view_fields if f["viewId"] == view["id"]]
    return sorted(found, key=lambda f: f["position"])


def kanban_columns(fake: FakeTwenty, view: dict[str, Any]) -> list[str]:
    """A Kanban's columns (option values; "" is the one of records with none), by position."""
    if fake.dialect == "1.x":
        found = view_records.groups_of(fake.workspace, view["id"])
    else:
        found = [g for g in fake.workspace.view_groups if g["viewId"] == view["id"]]
    return [g["fieldValue"] for g in sorted(found, key=lambda g: g["position"])]


def a_person_changes(fake: FakeTwenty, item: dict[str, Any], **changes: Any) -> None:
    """A change made in Twenty's screens to a view or a view field: its updatedAt moves on."""
    if fake.dialect == "2.x" and "viewId" in item:
        fake.workspace.update_view_field(item["id"], changes)
        return
    item.update(changes)
    item["updatedAt"] = later_than(item["createdAt"])


def shown(fake: FakeTwenty, view: dict[str, Any], *, visible_only: bool = True) -> list[str]:
    """The view's fields by name, in the order Twenty shows them: by position, the record's name
    first whatever its position (both versions' front ends move it there)."""
    names = {f["id"]: f["name"] for o in fake.workspace.objects for f in o["fieldsList"]}
    out = [names[f["fieldMetadataId"]] for f in view_fields(fake, view) if f["isVisible"] or not visible_only]
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
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)

    board = view_named(fake_twenty, "opportunity", "Whop memberships")
    assert shown(fake_twenty, board) == [
        "whopProduct",
        "whopPlanTitle",
        "amount",
        "whopRenewalDate",
        "whopLastPaymentStatus",
    ]
    columns = kanban_columns(fake_twenty, board)
    assert {"ACTIVE", "TRIALING", "CANCELED", "EXPIRED"} <= set(columns)
    if fake_twenty.dialect == "1.x":  # the board 1.x's screens show, not a core view
        assert (board["type"], board["key"]) == ("kanban", None)
        assert board["kanbanFieldMetadataId"] == field_of(fake_twenty, "opportunity", "whopMembershipStatus")["id"]  # type: ignore[index]
        assert columns[-1] == "", "the status is nullable: a column for memberships with none, last, as Twenty makes"
        assert fake_twenty.views == [], "no core view"


async def test_a_kanban_an_earlier_version_made_without_card_fields_gets_them_and_is_not_duplicated(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    model = load_data_model()
    await provision(
        meta, model.model_copy(update={"views": (), "columns": (), "sections": ()}), PUBLIC_URL, view_records=views
    )
    opportunity = fake_twenty.object_by_name("opportunity")
    status = field_of(fake_twenty, "opportunity", "whopMembershipStatus")
    assert status is not None
    await (meta if fake_twenty.dialect == "2.x" else views).create_kanban_view(
        object_id=opportunity["id"],
        name="Whop memberships",
        icon="IconLayoutKanban",
        group_field_id=status["id"],
        group_values=[o["value"] for o in status["options"]],
    )
    assert shown(fake_twenty, view_named(fake_twenty, "opportunity", "Whop memberships")) == []

    result = await provision(meta, model, PUBLIC_URL, view_records=views)

    statuses = {i.name: i.status for i in result.plan.items}
    assert statuses["view Whop memberships"] == "present"
    assert statuses["cards Whop memberships"] == "create"
    assert "whopLastPaymentStatus" in shown(fake_twenty, view_named(fake_twenty, "opportunity", "Whop memberships"))


async def test_payment_and_product_lists_open_on_their_useful_columns(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)

    # Twenty 2.21 shows a new object's system columns and files each new field hidden; 1.x shows
    # them (observed: createdAt, updatedAt, createdBy, position) and every new field after them.
    # The bridge's columns come right after the name, Twenty's own after them.
    twentys_own = ["createdAt", "createdBy", "updatedAt", "updatedBy"]
    if fake_twenty.dialect == "1.x":
        twentys_own = ["createdAt", "updatedAt", "createdBy", "position"]
    payments = list_view(fake_twenty, "whopPayment")
    assert payments["name"] == "All Whop Payments"
    declared = ["name", "paymentStatus", "amount", "netAmount", "paidAt", "person", "opportunity", "whopCompanyName"]
    listed = shown(fake_twenty, payments)
    assert listed[: len(declared) + 4] == [*declared, *twentys_own]
    products = shown(fake_twenty, list_view(fake_twenty, "whopProduct"))
    assert products[:8] == ["name", "memberCount", "visibility", "whopCompanyName", *twentys_own]
    if fake_twenty.dialect == "2.x":  # 1.x shows every field it filed; the bridge hides nothing
        assert len(listed) == len(declared) + 4 and len(products) == 8
    name = field_of(fake_twenty, "whopPayment", "name")
    assert name is not None
    (column,) = [f for f in view_fields(fake_twenty, payments) if f["fieldMetadataId"] == name["id"]]
    assert column["size"] == 320, "a payment's name reads whole in the list"


async def test_the_standard_lists_show_the_whop_columns_first_without_moving_the_ones_people_arranged(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    people = list_view(fake_twenty, "person")
    fifth = next(f for f in view_fields(fake_twenty, people) if f["isVisible"] and f["position"] == 5)
    a_person_changes(fake_twenty, fifth, isVisible=False)  # a person hid a column
    before = shown(fake_twenty, people, visible_only=False)
    before_visible = shown(fake_twenty, people)
    positions = {f["id"]: f["position"] for f in view_fields(fake_twenty, people)}

    await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)

    after = shown(fake_twenty, people, visible_only=False)
    added = ["whopMemberStatus", "whopLifetimeValue", "whopActiveMemberships", "whopLastPurchaseAt"]
    # Right after the e-mails (2.x files the new fields hidden, 1.x shows them at the end: the
    # declared ones move up, the others stay where Twenty put them, after the rest).
    mine = before[:2] + added + before[2:]
    assert after[: len(mine)] == mine, "name, e-mails, then the Whop columns, then the rest"
    visible = shown(fake_twenty, people)
    assert visible[: len(before_visible) + 4] == before_visible[:2] + added + before_visible[2:], "the hidden one stays"
    now = {f["id"]: f["position"] for f in view_fields(fake_twenty, people)}
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
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    """Twenty 2.21 puts every new field in its object's list view, hidden: "All Whop Payments"
    showed none of the payment fields until provisioning showed the declared ones."""
    model = load_data_model()
    await provision(meta, model, PUBLIC_URL, view_records=views)
    for columns in model.columns:
        listed = shown(fake_twenty, list_view(fake_twenty, columns.object))
        # Where they go (the first screen) is test_the_standard_lists_show_…'s concern.
        assert [f for f in listed if f in columns.fields] == list(columns.fields), columns.object
    payments = shown(fake_twenty, list_view(fake_twenty, "whopPayment"))
    if fake_twenty.dialect == "2.x":  # 1.x shows every field it filed; the bridge hides nothing
        assert "declineReason" not in payments, "only the declared columns are shown"

    again = await provision(meta, model, PUBLIC_URL, view_records=views)
    assert again.mutations == 0


async def test_a_whop_column_a_person_hid_stays_hidden(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    model = load_data_model()
    await provision(meta, model, PUBLIC_URL, view_records=views)
    people = list_view(fake_twenty, "person")
    ltv = field_of(fake_twenty, "person", "whopLifetimeValue")
    assert ltv is not None
    column = next(f for f in view_fields(fake_twenty, people) if f["fieldMetadataId"] == ltv["id"])
    a_person_changes(fake_twenty, column, isVisible=False)

    again = await provision(meta, model, PUBLIC_URL, view_records=views)

    assert again.mutations == 0
    assert "whopLifetimeValue" not in shown(fake_twenty, people)
    assert "whopLifetimeValue" in shown(fake_twenty, people, visible_only=False)


async def test_the_record_pages_get_a_whop_section_before_system(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    model = load_data_model()
    result = await provision(meta, model, PUBLIC_URL, view_records=views)

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
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    if fake_twenty.dialect == "1.x":
        pytest.skip("1.x record pages have no sections")
    model = load_data_model()
    await provision(
        meta, model.model_copy(update={"sections": ()}), PUBLIC_URL, view_records=views
    )  # before sections existed
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

    result = await provision(meta, model, PUBLIC_URL, view_records=views)

    assert {i.name: i.status for i in result.plan.items}["section person Whop"] == "create"
    sections = dict(record_page(fake_twenty, "person"))
    assert "whopUsername" in sections["General"]
    assert "whopUserId" in sections["Whop"] and "whopChurnedAt" in sections["Whop"]
    assert sections["System"] == ["createdAt", "updatedAt", "createdBy"]
    assert [name for name, _ in record_page(fake_twenty, "person")][-2:] == ["Whop", "System"]
    assert (await provision(meta, model, PUBLIC_URL, view_records=views)).mutations == 0


async def test_a_field_a_person_adds_later_lands_under_system_not_whop(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    if fake_twenty.dialect == "1.x":
        pytest.skip("1.x record pages have no sections")
    await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)
    person_id = fake_twenty.object_by_name("person")["id"]
    await meta.create_field({"objectMetadataId": person_id, "type": "TEXT", "name": "shoeSize", "label": "Shoe size"})

    sections = dict(record_page(fake_twenty, "person"))
    assert "shoeSize" in sections["System"] and "shoeSize" not in sections["Whop"]


async def test_ended_memberships_have_a_churned_stage_and_a_column_for_it(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    before = field_of(fake_twenty, "opportunity", "stage")
    assert before is not None
    kept = {o["value"]: o for o in before["options"]}

    result = await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)

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
    # Twenty's "By Stage" board gets a Churned column: Twenty makes it (1.x on its view records).
    board = view_named(fake_twenty, "opportunity", "By Stage")
    columns = kanban_columns(fake_twenty, board)
    assert columns.count("CHURNED") == 1 and columns[: len(kept)] == [
        o["value"] for o in sorted(kept.values(), key=lambda o: o["position"])
    ]
    assert (await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)).mutations == 0


async def test_a_kanban_gets_a_column_for_a_status_option_added_later(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
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
    await provision(meta, older, PUBLIC_URL, view_records=views)
    newest = status.options[-1].value

    result = await provision(meta, model, PUBLIC_URL, view_records=views)

    board = view_named(fake_twenty, "opportunity", "Whop memberships")
    assert kanban_columns(fake_twenty, board).count(newest) == 1
    # Twenty makes the column itself when the option is added (1.x on its view records too).
    assert [i for i in result.plan.items if i.kind == "view_groups"] == []
    assert (await provision(meta, model, PUBLIC_URL, view_records=views)).mutations == 0


async def test_the_dry_run_lists_what_the_views_will_get(
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    result = await provision(meta, load_data_model(), PUBLIC_URL, dry_run=True, view_records=views)

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
    fake_twenty: FakeTwenty, meta: MetadataClient, views: ViewRecordsApi
) -> None:
    opp_id = fake_twenty.object_by_name("opportunity")["id"]
    await meta.create_field({"objectMetadataId": opp_id, "type": "TEXT", "name": "whopMrr", "label": "MRR (text)"})

    def opportunity_view_fields() -> dict[str, dict[str, Any]]:
        return {f["id"]: f for v in views_of(fake_twenty, "opportunity") for f in view_fields(fake_twenty, v)}

    before = {i: dict(f) for i, f in opportunity_view_fields().items()}

    result = await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)

    statuses = {i.name: i.status for i in result.plan.items}
    assert statuses["cards Whop memberships"] == "blocked"
    assert statuses["columns opportunity"] == "blocked"
    assert statuses["columns person"] == "create"
    assert opportunity_view_fields() == before, "nothing on opportunity"


# Twenty 1.x: its screens show the view records (data API), not its core views ----------------


@pytest.fixture
def fake1() -> FakeTwenty:
    return FakeTwenty(dialect="1.x", api_key=TWENTY_KEY)


async def test_on_1x_the_kanban_is_a_view_record_its_screens_show_with_a_column_per_status_and_its_cards(
    fake1: FakeTwenty,
) -> None:
    transport = httpx.ASGITransport(app=fake1)
    async with (
        MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport) as meta,
        TwentyDataClient("http://twenty.test", TWENTY_KEY, transport=transport) as data,
    ):
        views = ViewRecordsApi(data)
        plan = await provision(meta, load_data_model(), PUBLIC_URL, dry_run=True, view_records=views)
        items = {i.name: i for i in plan.plan.items}
        assert (items["view Whop memberships"].status, items["view Whop memberships"].detail) == (
            "create",
            "KANBAN of opportunity grouped by whopMembershipStatus",
        ), "the plan shows it as on 2.x"
        assert items["cards Whop memberships"].status == "create"
        assert items["column sums Whop memberships"].status == "update"

        first = await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)
        writes = data.stats.writes
        second = await provision(meta, load_data_model(), PUBLIC_URL, view_records=views)

    assert not first.plan.conflicts
    board = view_named(fake1, "opportunity", "Whop memberships")
    status = field_of(fake1, "opportunity", "whopMembershipStatus")
    assert status is not None
    assert (board["type"], board["key"], board["icon"]) == ("kanban", None, "IconLayoutKanban")
    assert board["kanbanFieldMetadataId"] == status["id"]
    by_stage = view_named(fake1, "opportunity", "By Stage")
    assert board["position"] > by_stage["position"], "listed after Twenty's own views"
    assert kanban_columns(fake1, board) == [o["value"] for o in status["options"]] + [""]
    assert shown(fake1, board) == ["whopProduct", "whopPlanTitle", "amount", "whopRenewalDate", "whopLastPaymentStatus"]
    assert fake1.views == [], "no core view: 1.x's screens would not show it"
    assert second.mutations == 0 and data.stats.writes == writes, "a second run writes nothing"
    assert {i.status for i in second.plan.items} <= {"present", "manual", "unsupported"}


async def test_on_1x_a_core_view_an_earlier_version_made_is_left_alone_and_the_shown_kanban_is_made(
    fake1: FakeTwenty,
) -> None:
    transport = httpx.ASGITransport(app=fake1)
    async with (
        MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport) as meta,
        TwentyDataClient("http://twenty.test", TWENTY_KEY, transport=transport) as data,
    ):
        model = load_data_model()
        await provision(meta, model.model_copy(update={"views": ()}), PUBLIC_URL, view_records=ViewRecordsApi(data))
        status = field_of(fake1, "opportunity", "whopMembershipStatus")
        assert status is not None
        opportunity = fake1.object_by_name("opportunity")
        core = await meta.create_kanban_view(  # what the bridge made on 1.x before
            object_id=opportunity["id"],
            name="Whop memberships",
            icon="IconLayoutKanban",
            group_field_id=status["id"],
            group_values=[o["value"] for o in status["options"]],
        )
        before = fake1.views

        result = await provision(meta, model, PUBLIC_URL, view_records=ViewRecordsApi(data))

    assert {i.name: i.status for i in result.plan.items}["view Whop memberships"] == "create"
    assert fake1.views == before, "the core view is as it was"
    assert not [f for f in fake1.workspace.view_fields if f["viewId"] == core["id"]], "nothing added to it"
    assert "whopProduct" in shown(fake1, view_named(fake1, "opportunity", "Whop memberships"))


async def test_on_1x_a_view_a_person_made_or_changed_is_left_as_they_left_it(fake1: FakeTwenty) -> None:
    transport = httpx.ASGITransport(app=fake1)
    async with (
        MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport) as meta,
        TwentyDataClient("http://twenty.test", TWENTY_KEY, transport=transport) as data,
    ):
        views = ViewRecordsApi(data)
        model = load_data_model()
        await provision(meta, model, PUBLIC_URL, view_records=views)
        board = view_named(fake1, "opportunity", "Whop memberships")
        plan_title = field_of(fake1, "opportunity", "whopPlanTitle")
        assert plan_title is not None
        plan_card = next(f for f in view_fields(fake1, board) if f["fieldMetadataId"] == plan_title["id"])
        a_person_changes(fake1, board, name="Memberships by status")  # renamed: theirs now
        a_person_changes(fake1, plan_card, isVisible=False)
        mine = view_records.add_view(fake1.workspace, fake1.object_by_name("opportunity"), "My board", type="kanban")
        snapshot = [dict(v) for v in views_of(fake1, "opportunity")]
        fields_before = {v["id"]: [dict(f) for f in view_fields(fake1, v)] for v in snapshot}

        again = await provision(meta, model, PUBLIC_URL, view_records=views)

    # The renamed board is a person's: the bridge makes its own again, and touches neither.
    assert {i.name: i.status for i in again.plan.items}["view Whop memberships"] == "create"
    for view in snapshot:
        now = next(v for v in views_of(fake1, "opportunity") if v["id"] == view["id"])
        assert now == view, f"{view['name']} unchanged"
        assert [dict(f) for f in view_fields(fake1, now)] == fields_before[view["id"]], f"{view['name']}'s fields"
    assert mine["id"] in {v["id"] for v in snapshot}


async def test_on_1x_the_declared_columns_twenty_put_at_the_end_come_after_the_name_unless_a_person_moved_them(
    fake1: FakeTwenty,
) -> None:
    """1.x shows every new field at the end of its object's first list: after provisioning,
    "All Opportunities" showed 24 Whop columns after Twenty's six, the declared ones past the
    first screen (observed)."""
    transport = httpx.ASGITransport(app=fake1)
    async with (
        MetadataClient("http://twenty.test", TWENTY_KEY, transport=transport) as meta,
        TwentyDataClient("http://twenty.test", TWENTY_KEY, transport=transport) as data,
    ):
        views = ViewRecordsApi(data)
        model = load_data_model()
        await provision(meta, model.model_copy(update={"columns": ()}), PUBLIC_URL, view_records=views)
        listing = list_view(fake1, "opportunity")
        assert shown(fake1, listing)[:7] == [
            "name",
            "amount",
            "createdBy",
            "closeDate",
            "company",
            "pointOfContact",
            "whopPayments",
        ]
        mrr = field_of(fake1, "opportunity", "whopMrr")
        assert mrr is not None
        moved = next(f for f in view_fields(fake1, listing) if f["fieldMetadataId"] == mrr["id"])
        a_person_changes(fake1, moved, position=2.5)  # a person put MRR after "Created by"
        others = {f["id"]: f["position"] for f in view_fields(fake1, listing) if f["fieldMetadataId"] != mrr["id"]}

        plan = await provision(meta, model, PUBLIC_URL, dry_run=True, view_records=views)
        item = next(i for i in plan.plan.items if i.name == "columns opportunity")
        assert item.status == "create" and "move after the name (Twenty added them at the end)" in item.detail
        await provision(meta, model, PUBLIC_URL, view_records=views)
        again = await provision(meta, model, PUBLIC_URL, view_records=views)

    listed = shown(fake1, listing)
    declared = ["whopMembershipStatus", "whopProduct", "whopRenewalDate", "whopLastPaymentStatus", "whopPlanTitle"]
    assert listed[:6] == ["name", *declared], "on the first screen, in schema/ order"
    assert listed[6:10] == ["amount", "createdBy", "whopMrr", "closeDate"], "where the person put it"
    now = {f["id"]: f["position"] for f in view_fields(fake1, listing)}
    moved_ids = {f["id"] for f in view_fields(fake1, listing) if f["updatedAt"] != f["createdAt"]}
    assert all(now[i] == p for i, p in others.items() if i not in moved_ids), "no other column moved"
    assert again.mutations == 0


async def test_on_1x_without_the_view_records_the_plan_asks_for_the_views_by_hand(
    fake1: FakeTwenty,
) -> None:
    async with MetadataClient("http://twenty.test", TWENTY_KEY, transport=httpx.ASGITransport(app=fake1)) as meta:
        result = await provision(meta, load_data_model(), PUBLIC_URL)
    items = {i.name: i for i in result.plan.items}
    for name in ("view Whop memberships", "cards Whop memberships", "columns person"):
        assert items[name].status == "manual", name
        assert "data API" in items[name].detail and "by hand" in items[name].detail
    assert fake1.views == [] and not result.plan.conflicts


def _live(type_: str = "TEXT", *, active: bool = True, unique: bool = True, **more: Any) -> LiveField:
    return LiveField("f1", "whopId", type_, "Whop ID", active, unique, (), **more)


@pytest.mark.parametrize(
    ("declared", "live", "says"),
    [
        ({"type": "TEXT"}, _live(), None),
        ({"type": "NUMBER"}, _live(), "exists as TEXT, schema/ declares NUMBER; the bridge never retypes"),
        ({"type": "TEXT"}, _live(active=False), "person.whopId is deactivated in Twenty; reactivate it"),
        ({"type": "TEXT", "unique": True}, _live(unique=False), "exists but is not unique"),
        ({"type": "TEXT"}, _live(unique=False), None),
        (
            {"type": "RELATION", "relation": {"type": "MANY_TO_ONE", "target": "company", "targetFieldLabel": "P"}},
            _live("RELATION", relation_type="MANY_TO_ONE", relation_target="opportunity"),
            "relation person.whopId points to opportunity (MANY_TO_ONE), schema/ wants company (MANY_TO_ONE)",
        ),
        (
            {"type": "RELATION", "relation": {"type": "MANY_TO_ONE", "target": "company", "targetFieldLabel": "P"}},
            _live("RELATION", relation_type="MANY_TO_ONE", relation_target="company"),
            None,
        ),
    ],
)
def test_a_live_field_conflicts_when_its_type_state_uniqueness_or_relation_differ(
    declared: dict[str, Any], live: LiveField, says: str | None
) -> None:
    spec = FieldSpec.model_validate({"name": "whopId", "label": "Whop ID", **declared})
    found = _field_conflict("person.whopId", spec, live)
    if says is None:
        assert found is None
    else:
        assert found is not None and says in found


def test_only_the_declared_options_the_live_field_lacks_are_added_in_schema_order() -> None:
    options = [{"value": v, "label": v.title()} for v in ("ACTIVE", "TRIALING", "CANCELED")]
    spec = FieldSpec.model_validate({"name": "status", "label": "Status", "type": "SELECT", "options": options})
    live = LiveField("f1", "status", "SELECT", "Status", True, False, ({"value": "TRIALING"},))
    assert _missing_options(spec, live) == ("ACTIVE", "CANCELED")
    text = FieldSpec.model_validate({"name": "note", "label": "Note", "type": "TEXT"})
    assert _missing_options(text, live) == ()
