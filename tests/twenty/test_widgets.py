"""A widget declaration becomes the configuration Twenty 2.21 stores and its front end reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.twenty.schema import load_data_model
from bridge.twenty.widgets import FieldIds, WidgetSpec, graph_configuration

IDS = FieldIds(
    {
        "whopPayment": {"id": "f-id", "paymentStatus": "f-status", "whopCreatedAt": "f-created", "amount": "f-amount"},
        "opportunity": {"whopMrr": "f-mrr", "whopProduct": "f-product", "whopCreatedAt": "f-started"},
    },
    {"f-status": "SELECT", "f-created": "DATE_TIME", "f-mrr": "CURRENCY", "f-started": "DATE_TIME"},
)


def widget(**fields: Any) -> WidgetSpec:
    return WidgetSpec.model_validate({"title": "W", "at": [0, 0, 2, 3], **fields})


def test_a_success_rate_counts_the_succeeded_share_of_the_last_30_days_including_today() -> None:
    config = graph_configuration(
        widget(
            chart="NUMBER",
            object="whopPayment",
            ratio=["paymentStatus", "SUCCEEDED"],
            filters=[
                {"field": "paymentStatus", "op": "IS", "value": ["SUCCEEDED", "FAILED"]},
                {"field": "whopCreatedAt", "op": "IN_LAST", "value": "30_DAY"},
            ],
        ),
        IDS,
    )
    assert config["configurationType"] == "AGGREGATE_CHART"
    assert (config["aggregateFieldMetadataId"], config["aggregateOperation"]) == ("f-id", "COUNT")
    assert config["ratioAggregateConfig"] == {"fieldMetadataId": "f-status", "optionValue": "SUCCEEDED"}
    status, past, today = config["filter"]["recordFilters"]
    assert (status["operand"], json.loads(status["value"]), status["recordFilterGroupId"]) == (
        "IS",
        ["SUCCEEDED", "FAILED"],
        None,
    )
    (group,) = config["filter"]["recordFilterGroups"]
    assert group["logicalOperator"] == "OR" and group["parentRecordFilterGroupId"] is None
    assert [past["value"], today["value"]] == ["PAST_30_DAY;;UTC;;MONDAY;;", "THIS_1_DAY;;UTC;;MONDAY;;"]
    assert {past["recordFilterGroupId"], today["recordFilterGroupId"]} == {group["id"]}


def test_mrr_by_product_sums_mrr_grouped_by_the_products_name_in_horizontal_bars() -> None:
    config = graph_configuration(
        widget(
            chart="BAR",
            object="opportunity",
            aggregate="SUM",
            field="whopMrr",
            groupBy="whopProduct.name",
            layout="HORIZONTAL",
            orderBy="VALUE_DESC",
        ),
        IDS,
    )
    assert config["configurationType"] == "BAR_CHART" and config["layout"] == "HORIZONTAL"
    assert (config["primaryAxisGroupByFieldMetadataId"], config["primaryAxisGroupBySubFieldName"]) == (
        "f-product",
        "name",
    )
    assert config["primaryAxisOrderBy"] == "VALUE_DESC" and "filter" not in config


def test_outcomes_by_month_stack_the_statuses_in_their_option_order() -> None:
    config = graph_configuration(
        widget(
            chart="BAR",
            object="whopPayment",
            groupBy="whopCreatedAt",
            granularity="MONTH",
            stackBy="paymentStatus",
        ),
        IDS,
    )
    assert config["primaryAxisDateGranularity"] == "MONTH"
    assert (config["secondaryAxisGroupByFieldMetadataId"], config["groupMode"]) == ("f-status", "STACKED")
    assert config["secondaryAxisOrderBy"] == "FIELD_POSITION_ASC" and config["displayLegend"] is True


def test_a_pie_groups_by_its_field_and_hides_empty_slices() -> None:
    config = graph_configuration(widget(chart="PIE", object="whopPayment", groupBy="paymentStatus"), IDS)
    assert config["configurationType"] == "PIE_CHART"
    assert config["groupByFieldMetadataId"] == "f-status" and config["hideEmptyCategory"] is True


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        pytest.param({"chart": "BAR", "object": "opportunity"}, "needs groupBy", id="bar-without-group"),
        pytest.param({"chart": "NUMBER", "object": "opportunity", "at": [0, 10, 2, 3]}, "12-column", id="too-wide"),
        pytest.param(
            {"chart": "NUMBER", "object": "opportunity", "aggregate": "SUM"}, "needs the field", id="sum-of-id"
        ),
        pytest.param(
            {
                "chart": "TABLE",
                "object": "person",
                "columns": ["name"],
                "filters": [{"field": "x", "op": "IN_LAST", "value": "7_DAY"}],
            },
            "IN_LAST",
            id="in-last-on-a-table",
        ),
        pytest.param(
            {"chart": "NUMBER", "object": "person", "filters": [{"field": "x", "op": "IN_LAST", "value": "a week"}]},
            "period",
            id="in-last-bad-period",
        ),
    ],
)
def test_a_widget_declared_wrong_is_refused_when_schema_loads(fields: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        widget(**fields)


def test_the_declared_dashboard_names_only_fields_schema_declares() -> None:
    model = load_data_model()
    (board,) = model.dashboards
    declared = {o.nameSingular: {f.name for f in o.fields} for o in model.objects}
    for w in board.widgets:
        for name in w.field_names():
            assert name == "id" or name in declared[w.object] or name in ("name", "emails"), (w.title, name)
    assert len({w.title for w in board.widgets}) == len(board.widgets)
