"""Widgets of Twenty 2.x page layouts, as `schema/` declares them, and the configuration each
becomes (pure: a declaration plus the workspace's field ids in, Twenty's JSON out).

A widget aggregates Twenty's own records when the page is opened, so a dashboard made of them
is live without the bridge. Kinds:

* NUMBER, BAR, LINE, PIE: a GRAPH widget (AGGREGATE_CHART, BAR_CHART, LINE_CHART, PIE_CHART).
* TABLE: a RECORD_TABLE widget showing a view of its own (type TABLE_WIDGET, never listed among
  the object's views) with the declared columns, sort and filters.
* RELATION_TABLE: on a record page, a FIELD widget showing a one-to-many relation of the record
  as a table; its view is filtered to the record the page shows.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Chart = Literal["NUMBER", "BAR", "LINE", "PIE", "TABLE", "RELATION_TABLE"]
Aggregate = Literal["COUNT", "SUM", "AVG", "MIN", "MAX", "COUNT_EMPTY", "COUNT_NOT_EMPTY", "COUNT_UNIQUE_VALUES"]
# Twenty's operands, and IN_LAST ("30_DAY": the last 30 days and today). Twenty's own
# PAST_30_DAY ends where today starts (twenty-shared resolveRelativeDateTimeFilter), so a
# refund made this morning would wait until tomorrow; IN_LAST is PAST_n OR THIS_1, one group.
Operand = Literal[
    "IS", "IS_NOT", "GREATER_THAN_OR_EQUAL", "LESS_THAN_OR_EQUAL", "IS_RELATIVE", "IS_EMPTY", "IS_NOT_EMPTY", "IN_LAST"
]
OrderBy = Literal["FIELD_ASC", "FIELD_DESC", "FIELD_POSITION_ASC", "FIELD_POSITION_DESC", "VALUE_ASC", "VALUE_DESC"]
Granularity = Literal["DAY", "WEEK", "MONTH", "QUARTER", "YEAR"]

GRID_COLUMNS = 12
GRAPH_CONFIGURATION = {"NUMBER": "AGGREGATE_CHART", "BAR": "BAR_CHART", "LINE": "LINE_CHART", "PIE": "PIE_CHART"}
# What Twenty's own "My First Dashboard" sets on every chart (twenty-server 2.21).
TIMEZONE = "UTC"
MONDAY = 1  # CalendarStartDay.MONDAY
# A relative date filter's value: DIRECTION_AMOUNT_UNIT;;timezone;;first day of the week;;
_RELATIVE_SUFFIX = ";;UTC;;MONDAY;;"
_PERIOD = re.compile(r"^\d+_(DAY|WEEK|MONTH|QUARTER|YEAR|HOUR)$")


class WidgetFilter(BaseModel):
    """One condition on the widget's records; several are all required (AND).

    `value`: option values for a SELECT (IS / IS_NOT), a number for NUMBER and CURRENCY (in
    major units), or a relative period for a date (IS_RELATIVE): "PAST_30_DAY", "THIS_1_MONTH".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    op: Operand
    value: str | float | tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _value_fits(self) -> WidgetFilter:
        wants_value = self.op not in ("IS_EMPTY", "IS_NOT_EMPTY")
        if wants_value != (self.value is not None):
            raise ValueError(f"filter on {self.field}: {self.op} {'needs' if wants_value else 'takes no'} value")
        if self.op == "IN_LAST" and not (isinstance(self.value, str) and _PERIOD.match(self.value)):
            raise ValueError(f'filter on {self.field}: IN_LAST takes a period such as "30_DAY"')
        return self


class WidgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    chart: Chart
    object: str  # the records it shows; for RELATION_TABLE, the record page's object
    at: tuple[int, int, int, int]  # row, column, rows, columns on a 12-column grid
    aggregate: Aggregate = "COUNT"
    field: str = "id"  # the field aggregated (COUNT counts records: "id")
    groupBy: str | None = None  # a field, or relation.subfield ("whopProduct.name")
    granularity: Granularity | None = None  # when groupBy is a date
    stackBy: str | None = None  # BAR: the second grouping, stacked
    ratio: tuple[str, str] | None = None  # NUMBER: share of records whose SELECT (field, value)
    filters: tuple[WidgetFilter, ...] = ()
    layout: Literal["VERTICAL", "HORIZONTAL"] = "VERTICAL"
    orderBy: OrderBy | None = None
    color: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    description: str | None = None
    cumulative: bool = False
    # TABLE and RELATION_TABLE
    columns: tuple[str, ...] = ()
    sort: tuple[str, Literal["ASC", "DESC"]] | None = None
    relation: str | None = None  # RELATION_TABLE: the one-to-many field of `object` it shows

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a widget needs a title (the bridge finds its widgets again by title)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> WidgetSpec:
        self._check_grid()
        self._check_chart_parts()
        if self.aggregate != "COUNT" and self.field == "id":
            raise ValueError(f"widget {self.title!r}: {self.aggregate} needs the field it aggregates")
        recent = [f for f in self.filters if f.op == "IN_LAST"]
        if len(recent) > 1 or (recent and self.chart in ("TABLE", "RELATION_TABLE")):
            raise ValueError(f"widget {self.title!r}: one IN_LAST filter, on a chart only")
        return self

    def _check_grid(self) -> None:
        _row, column, rows, columns = self.at
        if min(self.at) < 0 or rows < 1 or columns < 1 or column + columns > GRID_COLUMNS:
            raise ValueError(f"widget {self.title!r}: `at` must fit a {GRID_COLUMNS}-column grid")

    def _check_chart_parts(self) -> None:
        """Each part a kind of chart needs is there, and none another kind has."""
        if self.chart in ("BAR", "LINE", "PIE") and not self.groupBy:
            raise ValueError(f"widget {self.title!r}: a {self.chart} chart needs groupBy")
        if self.chart in ("TABLE", "RELATION_TABLE") and not self.columns:
            raise ValueError(f"widget {self.title!r}: a table needs columns")
        if (self.chart == "RELATION_TABLE") != (self.relation is not None):
            raise ValueError(f"widget {self.title!r}: `relation` is for RELATION_TABLE widgets, which need it")
        if self.ratio and self.chart != "NUMBER":
            raise ValueError(f"widget {self.title!r}: only a NUMBER shows a ratio")
        if self.stackBy and self.chart != "BAR":
            raise ValueError(f"widget {self.title!r}: only a BAR chart stacks")

    @property
    def widget_type(self) -> str:
        return {"TABLE": "RECORD_TABLE", "RELATION_TABLE": "FIELD"}.get(self.chart, "GRAPH")

    def field_names(self) -> list[str]:
        """The fields of `object` the widget refers to (for RELATION_TABLE: `relation` only)."""
        if self.chart == "RELATION_TABLE":
            return [str(self.relation)]
        names = [self.field, *(f.field for f in self.filters)]
        names += [n.split(".", 1)[0] for n in (self.groupBy, self.stackBy) if n]
        names += [self.ratio[0]] if self.ratio else []
        if self.chart == "TABLE":
            names += [*self.columns, *([self.sort[0]] if self.sort else [])]
        return list(dict.fromkeys(names))


class PageSpec(BaseModel):
    """A dashboard (its own page layout) or a tab the bridge adds to an object's record page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str  # the dashboard's title or the tab's
    widgets: tuple[WidgetSpec, ...] = Field(min_length=1)
    # Dashboards: the page layout's name, which the bridge finds its dashboard by (a person's
    # dashboards have Twenty's "Dashboard Layout"); the title is what people see and may change.
    key: str | None = None
    tab: str = "Overview"  # a dashboard's one tab
    object: str | None = None  # record-page tabs: whose record page
    icon: str = "IconBrandWhop"
    after: str | None = None  # record-page tabs: placed right after the tab of this title

    @model_validator(mode="after")
    def _consistent(self) -> PageSpec:
        titles = [w.title for w in self.widgets]
        if len(set(titles)) != len(titles):
            raise ValueError(f"page {self.title!r}: two widgets have the same title")
        if (self.key is None) == (self.object is None):
            raise ValueError(f"page {self.title!r}: a dashboard has a `key`, a record-page tab an `object`")
        for w in self.widgets:
            if self.object is not None and w.object != self.object and w.chart == "RELATION_TABLE":
                raise ValueError(f"widget {w.title!r}: a relation table shows a relation of {self.object}")
        return self


# Twenty's configuration --------------------------------------------------------------------


class FieldIds:
    """Field ids by object and name, from the live workspace (provision.py fills it)."""

    def __init__(self, by_object: dict[str, dict[str, str]], types: dict[str, str]) -> None:
        self.by_object = by_object
        self.types = types  # field id -> Twenty type

    def id(self, obj: str, name: str) -> str:
        return self.by_object[obj][name]

    def has(self, obj: str, name: str) -> bool:
        return name in self.by_object.get(obj, {})


def graph_configuration(w: WidgetSpec, ids: FieldIds) -> dict[str, Any]:
    """The configuration of a NUMBER / BAR / LINE / PIE widget."""
    config = _chart_basics(w, ids)
    if w.chart == "NUMBER":
        return config | _number_configuration(w, ids)
    group_id, group_sub = _group(w, ids, str(w.groupBy))
    if w.chart == "PIE":
        return config | _pie_configuration(w, group_id, group_sub)
    return config | _axes_configuration(w, ids, group_id, group_sub)


def _chart_basics(w: WidgetSpec, ids: FieldIds) -> dict[str, Any]:
    """What every chart sets: its kind, the aggregate, the filters and how it looks."""
    config: dict[str, Any] = {
        "configurationType": GRAPH_CONFIGURATION[w.chart],
        "aggregateFieldMetadataId": ids.id(w.object, w.field),
        "aggregateOperation": w.aggregate,
        "timezone": TIMEZONE,
        "firstDayOfTheWeek": MONDAY,
    }
    if w.filters:
        config["filter"] = chart_filter(w, ids)
    if w.description:
        config["description"] = w.description
    if w.color:
        config["color"] = w.color
    return config


def _number_configuration(w: WidgetSpec, ids: FieldIds) -> dict[str, Any]:
    config: dict[str, Any] = {"displayDataLabel": False}
    config |= {k: v for k, v in (("prefix", w.prefix), ("suffix", w.suffix)) if v is not None}
    if w.ratio:
        config["ratioAggregateConfig"] = {
            "fieldMetadataId": ids.id(w.object, w.ratio[0]),
            "optionValue": w.ratio[1],
        }
    return config


def _pie_configuration(w: WidgetSpec, group_id: str, group_sub: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {"groupByFieldMetadataId": group_id, "displayLegend": True, "showCenterMetric": True}
    config |= {"displayDataLabel": False, "hideEmptyCategory": True}
    config |= {"orderBy": w.orderBy or "VALUE_DESC"}
    config |= {"groupBySubFieldName": group_sub} if group_sub else {}
    config |= {"dateGranularity": w.granularity} if w.granularity else {}
    return config


def _axes_configuration(w: WidgetSpec, ids: FieldIds, group_id: str, group_sub: str | None) -> dict[str, Any]:
    """A BAR or LINE chart's axes: the grouping along the primary one, a BAR's stacking."""
    config: dict[str, Any] = {
        "primaryAxisGroupByFieldMetadataId": group_id,
        "primaryAxisOrderBy": w.orderBy or "FIELD_ASC",
    }
    config |= {"primaryAxisGroupBySubFieldName": group_sub} if group_sub else {}
    config |= {"primaryAxisDateGranularity": w.granularity} if w.granularity else {}
    config |= {"axisNameDisplay": "NONE", "displayDataLabel": w.chart == "BAR" and not w.stackBy}
    config |= {"displayLegend": bool(w.stackBy), "omitNullValues": True, "isCumulative": w.cumulative}
    if w.chart == "BAR":
        config["layout"] = w.layout
        if w.stackBy:
            stack_id, stack_sub = _group(w, ids, w.stackBy)
            config |= {"secondaryAxisGroupByFieldMetadataId": stack_id, "groupMode": "STACKED"}
            config |= {"secondaryAxisOrderBy": "FIELD_POSITION_ASC"}
            config |= {"secondaryAxisGroupBySubFieldName": stack_sub} if stack_sub else {}
    return config


def _group(w: WidgetSpec, ids: FieldIds, name: str) -> tuple[str, str | None]:
    field, _, sub = name.partition(".")
    return ids.id(w.object, field), sub or None


def chart_filter(w: WidgetSpec, ids: FieldIds) -> dict[str, Any]:
    """Twenty's chart filter: top-level record filters, all required; an IN_LAST filter is an
    OR group of two relative filters (Twenty reads one outermost group beside them)."""
    filters: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    for f in w.filters:
        field_id = ids.id(w.object, f.field)
        kind = ids.types.get(field_id, "")
        one = {"fieldMetadataId": field_id, "type": kind, "recordFilterGroupId": None}
        if f.op != "IN_LAST":
            filters.append(one | {"operand": f.op, "value": filter_value(f, kind)})
            continue
        group = str(uuid.uuid5(uuid.NAMESPACE_URL, f"whop-twenty-bridge:{w.title}:{f.field}"))
        groups.append({"id": group, "logicalOperator": "OR", "parentRecordFilterGroupId": None})
        unit = str(f.value).split("_", 1)[1]
        for period in (f"PAST_{f.value}", f"THIS_1_{unit}"):
            filters.append(
                one | {"operand": "IS_RELATIVE", "value": period + _RELATIVE_SUFFIX, "recordFilterGroupId": group}
            )
    return {"recordFilters": filters, "recordFilterGroups": groups}


def filter_value(f: WidgetFilter, field_type: str) -> str:
    """A filter's value as Twenty's front end stores it (always a string)."""
    if f.value is None:
        return ""
    if f.op == "IS_RELATIVE":
        return f"{f.value}{_RELATIVE_SUFFIX}"
    if isinstance(f.value, tuple) or field_type in ("SELECT", "MULTI_SELECT"):
        values = list(f.value) if isinstance(f.value, tuple) else [str(f.value)]
        return json.dumps(values)
    if isinstance(f.value, float) and f.value.is_integer():
        return str(int(f.value))
    return str(f.value)


def grid_position(w: WidgetSpec) -> dict[str, int]:
    row, column, rows, columns = w.at
    return {"row": row, "column": column, "rowSpan": rows, "columnSpan": columns}
