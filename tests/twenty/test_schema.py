"""schema/ is validated when loaded: Twenty's naming rules fail fast, naming the file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.twenty.schema import SchemaFileError, load_data_model, section_fields


def test_the_shipped_data_model_loads_with_every_key_field_unique() -> None:
    model = load_data_model()
    assert model.object("whopProduct").field("whopProductId").unique
    assert model.object("person").field("whopUserId").unique
    assert model.object("opportunity").field("whopMembershipId").unique
    status = model.object("opportunity").field("whopMembershipStatus")
    assert set(status.option_values()) >= {
        "TRIALING",
        "ACTIVE",
        "PAST_DUE",
        "COMPLETED",
        "CANCELED",
        "EXPIRED",
        "UNRESOLVED",
        "DRAFTED",
        "CANCELING",
    }
    relation = model.object("opportunity").field("whopProduct").relation
    assert relation is not None and relation.type == "MANY_TO_ONE" and relation.target == "whopProduct"
    assert model.views[0].groupBy == "whopMembershipStatus"


def test_custom_objects_come_before_the_objects_that_point_at_them() -> None:
    names = [o.nameSingular for o in load_data_model().objects]
    assert names.index("whopProduct") < names.index("opportunity")


def _copy_schema(tmp_path: Path) -> Path:
    source = Path(__file__).resolve().parents[2] / "schema"
    target = tmp_path / "schema"
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ('name = "whopUserId"', 'name = "type"', "reserved"),
        ('name = "whopUserId"', 'name = "WhopUserId"', "camelCase"),
        ('name = "whopUserId"', f'name = "w{"x" * 63}"', "63"),
        ('value = "JOINED"', 'value = "joined"', "UPPER_SNAKE"),
        ('value = "JOINED"', 'value = "JOINED__NOW"', "UPPER_SNAKE"),
        ('label = "Joined", color', 'label = "Joined, really", color', "comma"),
        ('color = "green" },\n  { value = "LEFT"', 'color = "neon" },\n  { value = "LEFT"', "color"),
    ],
    ids=[
        "reserved-name",
        "not-camel-case",
        "too-long",
        "lower-case-option",
        "double-underscore",
        "comma-in-label",
        "unknown-color",
    ],
)
def test_a_name_twenty_would_refuse_fails_at_load_time(tmp_path: Path, old: str, new: str, complaint: str) -> None:
    schema = _copy_schema(tmp_path)
    person = schema / "objects" / "person.toml"
    text = person.read_text()
    assert old in text
    person.write_text(text.replace(old, new, 1))
    with pytest.raises(SchemaFileError, match=complaint):
        load_data_model(schema)


def test_a_kanban_grouped_by_a_non_select_field_is_refused(tmp_path: Path) -> None:
    schema = _copy_schema(tmp_path)
    views = schema / "views.toml"
    views.write_text(views.read_text().replace('groupBy = "whopMembershipStatus"', 'groupBy = "whopPlanId"'))
    with pytest.raises(SchemaFileError, match="SELECT"):
        load_data_model(schema)


def test_a_relation_to_an_unknown_object_is_refused(tmp_path: Path) -> None:
    schema = _copy_schema(tmp_path)
    opp = schema / "objects" / "opportunity.toml"
    opp.write_text(opp.read_text().replace('target = "whopProduct"', 'target = "whopThing"'))
    with pytest.raises(SchemaFileError, match="unknown target"):
        load_data_model(schema)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    schema = _copy_schema(tmp_path)
    (schema / "objects" / "person.toml").write_text("[object\n")
    with pytest.raises(SchemaFileError, match=r"person\.toml"):
        load_data_model(schema)


def test_the_shipped_views_show_cards_columns_and_whop_sections() -> None:
    model = load_data_model()
    (board,) = model.views
    assert board.fields == ("whopProduct", "whopPlanTitle", "amount", "whopRenewalDate", "whopLastPaymentStatus")
    assert {c.object for c in model.columns} == {"whopPayment", "whopProduct", "person", "opportunity"}
    person = next(s for s in model.sections if s.object == "person")
    held = section_fields(model, person)
    assert "whopLifetimeValue" in held and "whopPayments" in held, "declared fields and inverse relations"
    opportunity = next(s for s in model.sections if s.object == "opportunity")
    assert "stage" not in section_fields(model, opportunity), "Twenty's own stage stays where it is"
    stage = model.object("opportunity").field("stage")
    assert stage.standard and stage.option_values() == ["CHURNED", "WAITLISTED"]


def test_a_concern_declares_its_fields_of_an_object_in_its_own_file(tmp_path: Path) -> None:
    model = load_data_model()
    opportunity = model.object("opportunity")
    assert opportunity.field("whopWaitlistStatus").type == "SELECT", "from opportunity.waitlist.toml"
    assert opportunity.field("whopMembershipId").unique, "and opportunity.toml's own fields stay"
    assert [o.nameSingular for o in model.objects].count("opportunity") == 1

    schema = _copy_schema(tmp_path)
    extra = schema / "objects" / "opportunity.extra.toml"
    extra.write_text('[object]\nnameSingular = "opportunity"\n\n[[fields]]\nname = "whopPlanId"\ntype = "TEXT"\n')
    with pytest.raises(SchemaFileError, match=r"opportunity\.extra\.toml.*whopPlanId is declared twice"):
        load_data_model(schema)
    extra.write_text('[object]\nnameSingular = "opportunity"\ncustom = true\n')
    with pytest.raises(SchemaFileError, match=r"object\.custom"):
        load_data_model(schema)


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ('fields = ["memberCount"', 'fields = ["memberCounts"', "no field 'memberCounts'"),
        ('fields = ["memberCount"', 'fields = ["visibility", "visibility"', "listed twice"),
        ('object = "whopProduct"\nfields', 'object = "whopThing"\nfields', "unknown object"),
        ('[[sections]]\nobject = "person"', '[[sections]]\nobject = "opportunity"', "two section entries"),
    ],
    ids=["unknown-field-on-a-custom-object", "field-twice", "unknown-object", "two-sections-for-one-object"],
)
def test_a_view_naming_what_does_not_exist_fails_at_load_time(
    tmp_path: Path, old: str, new: str, complaint: str
) -> None:
    schema = _copy_schema(tmp_path)
    views = schema / "views.toml"
    assert old in views.read_text()
    views.write_text(views.read_text().replace(old, new, 1))
    with pytest.raises(SchemaFileError, match=complaint):
        load_data_model(schema)


def test_a_standard_field_is_declared_only_to_add_options(tmp_path: Path) -> None:
    schema = _copy_schema(tmp_path)
    product = schema / "objects" / "whopProduct.toml"
    product.write_text(product.read_text().replace('name = "headline"', 'name = "headline"\nstandard = true', 1))
    with pytest.raises(SchemaFileError, match="standard field"):
        load_data_model(schema)


def test_the_payments_relation_keeps_its_name_whop_payments_while_it_shows_as_payments() -> None:
    relation = load_data_model().object("whopPayment").field("person").relation
    assert relation is not None
    assert relation.target_field_name == "whopPayments", "queries and records keep the name"
    assert relation.creation_label == "Whop payments", "Twenty names a new inverse field after this label"
    assert relation.targetFieldLabel == "Payments"


def test_short_labels_remember_the_bridges_earlier_ones() -> None:
    person = load_data_model().object("person")
    assert person.field("whopUserId").label == "User ID"
    assert "Whop User ID" in person.field("whopUserId").formerLabels
