"""The object modules' declarations, and the tables the sync, the worker and the option guard
derive from them (bridge/sync/objects/)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from bridge.store.shadows import Shadow
from bridge.sync.objects import (
    BY_KIND,
    MEMBERSHIPS,
    OBJECTS,
    PAYMENTS,
    PEOPLE,
    PHASE_OBJECTS,
    PRODUCTS,
    REVENUE,
    REVIEWS,
    SELECT_FIELDS,
    WAITLIST,
    SyncedObject,
    event_kind,
)
from bridge.sync.objects.tasks import shadow_label
from bridge.sync.options import SELECT_FIELDS as GUARDED
from bridge.whop.client import WhopClient
from bridge.whop.models import Member
from bridge.worker import STEP_KINDS


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("membership.activated", "membership"),
        ("membership.cancel_at_period_end_changed", "membership"),
        ("member.updated", "member"),
        ("payment.succeeded", "payment"),
        ("refund.created", "payment"),
        ("dispute.created", "payment"),
        ("dispute_alert.created", "payment"),
        ("resolution_center_case.updated", "payment"),
        ("invoice.past_due", "invoice"),
        ("entry.approved", "entry"),
        ("product.deleted", "product"),
        ("review.created", ""),  # Whop sends none: every sync reads reviews instead
        ("course.updated", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_an_event_names_the_kind_its_prefix_is_declared_by(event_type: str | None, kind: str) -> None:
    assert event_kind(event_type) == kind


def test_each_event_kind_names_ids_of_its_own_whop_prefix() -> None:
    assert {kind: obj.id_prefix for kind, obj in BY_KIND.items()} == {
        "product": "prod_",
        "member": "mber_",
        "membership": "mem_",
        "payment": "pay_",
        "entry": "entry_",
        "invoice": "inv_",
    }


def test_every_kind_webhook_events_name_has_a_step_in_the_worker_and_no_step_is_left_over() -> None:
    # A declared kind without a step would have its events failed ("no step in the worker").
    assert sorted(STEP_KINDS) == sorted(BY_KIND)


def test_a_payload_stands_in_for_a_read_only_of_the_kinds_the_bridge_keeps_shadows_of() -> None:
    hinted = {kind: obj.shadow_name for kind, obj in BY_KIND.items() if obj.hint is not None}
    assert hinted == {"product": "whopProduct", "membership": "opportunity", "payment": "whopPayment"}


def test_the_option_guard_watches_the_select_fields_the_objects_declare() -> None:
    assert GUARDED is SELECT_FIELDS
    assert SELECT_FIELDS == {
        "whopProduct": ("visibility",),
        "person": ("whopMemberStatus",),
        "opportunity": (
            "whopMembershipStatus",
            "whopLastPaymentStatus",
            "whopPlanType",
            "whopMostRecentAction",
            "stage",
        ),
        "whopPayment": ("paymentStatus", "billingReason"),
    }


def test_each_checkpoint_phase_reports_its_records_by_the_twenty_object_they_become() -> None:
    assert PHASE_OBJECTS == {
        "products": "whopProduct",
        "members": "person",
        "memberships": "opportunity",
        "membership_facts": "opportunity",
        "payment_records": "whopPayment",
        "payments": "whopPayment",
    }


@pytest.mark.parametrize(
    ("obj", "record"),
    [
        (PRODUCTS, {"whopProductId": "prod_1", "visibility": "DELETED"}),
        (MEMBERSHIPS, {"whopMembershipId": "mem_1", "whopMembershipStatus": "DELETED"}),
        (REVIEWS, {"whopReviewId": "rev_1", "reviewStatus": "DELETED"}),
        (WAITLIST, {"whopMembershipId": "entry_1", "whopWaitlistStatus": "DELETED"}),
    ],
)
def test_a_record_deleted_at_whop_changes_only_its_status(obj: SyncedObject[Any], record: dict[str, str]) -> None:
    key = next(iter(record.values()))
    item = obj.deleted_item(key)
    assert (item.key, item.basis, item.whop_updated_at) == (key, record, None)
    built = item.build({"name": "curated"}, {"name": "written"})
    assert built == record
    assert built is not item.basis  # each write gets its own copy


@pytest.mark.parametrize("obj", [PEOPLE, PAYMENTS, REVENUE])
def test_an_object_never_deleted_at_whop_makes_no_deleted_item(obj: SyncedObject[Any]) -> None:
    with pytest.raises(ValueError, match="never marked deleted"):
        obj.deleted_item("x")


def test_shadows_default_to_the_twenty_object_and_phases_lead_with_the_writing_one() -> None:
    assert [o.shadow_name for o in (PRODUCTS, PEOPLE, REVENUE, WAITLIST)] == [
        "whopProduct",
        "person",
        "personRevenue",
        "waitlistEntry",
    ]
    assert PAYMENTS.phases == ("payment_records", "payments")
    assert REVENUE.phases == ()


def test_every_paged_object_reads_whop_by_page_and_every_event_kind_by_id() -> None:
    calls: list[str] = []

    class Whop:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return name

    whop = cast(WhopClient, Whop())
    pages: dict[str, Any] = {
        o.kind: o.list_page(whop) for o in OBJECTS if o.phase is not None and o.list_page is not None
    }
    ones: dict[str, Any] = {o.kind: o.get_one(whop) for o in BY_KIND.values() if o.get_one is not None}
    assert pages == {
        "product": "list_products",
        "member": "list_members",
        "membership": "list_memberships",
        "payment": "list_payments",
    }
    assert ones == {
        "product": "get_product",
        "member": "get_member",
        "membership": "get_membership",
        "payment": "get_payment",
        "invoice": "get_invoice",
    }
    assert all(o.build is not None for o in OBJECTS if o.phase is not None and o is not MEMBERSHIPS)


def test_a_person_is_keyed_by_its_user_else_its_member() -> None:
    assert PEOPLE.key is not None
    assert PEOPLE.key(Member.model_validate({"id": "mber_1", "user": {"id": "user_1"}})) == "user_1"
    assert PEOPLE.key(Member.model_validate({"id": "mber_2"})) == "mber_2"


def shadow(written: Any) -> Shadow:
    at = datetime(2031, 1, 1, tzinfo=UTC)
    return Shadow("biz_1", "person", "user_1", "tw-1", "h", at, written, at, None, None)


@pytest.mark.parametrize(
    ("found", "label"),
    [
        (shadow({"_label": "Ann Lee", "name": "x"}), "Ann Lee"),
        (shadow({"name": "x"}), None),
        (shadow(None), None),
        (shadow(["not", "a", "dict"]), None),
        (None, None),
    ],
)
def test_a_shadow_label_is_the_name_the_writer_kept_or_none(found: Shadow | None, label: str | None) -> None:
    assert shadow_label(found) == label


@pytest.mark.parametrize(
    ("obj", "objects", "reason"),
    [
        (PAYMENTS, {"person", "opportunity"}, "payment history skipped: run `provision` to add the WhopPayment object"),
        (REVIEWS, {"person"}, "reviews skipped: run `provision` to add the WhopReview object"),
        (PAYMENTS, {"whopPayment"}, None),
        (PAYMENTS, None, None),  # the live objects not known: written, and the write says what is wrong
        (PEOPLE, set(), None),  # every provisioned workspace has People
        (PRODUCTS, set(), None),
    ],
)
def test_an_object_added_later_is_skipped_where_it_is_not_provisioned(
    obj: SyncedObject[Any], objects: set[str] | None, reason: str | None
) -> None:
    assert obj.unprovisioned(objects) == reason
