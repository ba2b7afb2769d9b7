"""Every metadata document the bridge sends validates against the dialect it was written for."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_schema, parse, validate

from bridge.twenty.documents import Dialect, documents

SDL_DIR = Path(__file__).resolve().parents[2] / "fakes" / "twenty" / "sdl"
SDL = {Dialect.V1: "metadata-1.x.graphql", Dialect.V2: "metadata-2.43.graphql"}


@cache
def schema(dialect: Dialect) -> GraphQLSchema:
    return build_schema((SDL_DIR / SDL[dialect]).read_text())


@pytest.mark.parametrize("dialect", list(Dialect))
def test_every_document_validates_against_its_dialect(dialect: Dialect) -> None:
    for name, text in documents(dialect).items():
        errors = validate(schema(dialect), parse(text))
        assert not errors, f"{dialect} {name}: {[e.message for e in errors]}"


def test_every_2x_document_also_validates_against_the_real_2_21_schema() -> None:
    """2.21 (introspected from a real server) differs from 2.43 in page layouts; every
    document must suit both."""
    real_2_21 = build_schema((SDL_DIR / "metadata-2.21.graphql").read_text())
    for name, text in documents(Dialect.V2).items():
        errors = validate(real_2_21, parse(text))
        assert not errors, f"2.21 {name}: {[e.message for e in errors]}"


def test_the_two_dialects_really_differ_where_the_bridge_branches() -> None:
    v2_view = documents(Dialect.V2)["CreateView"]
    assert validate(schema(Dialect.V1), parse(v2_view)), "createView must not exist on 1.x"
    v1_view = documents(Dialect.V1)["CreateView"]
    assert validate(schema(Dialect.V2), parse(v1_view)), "createCoreView must not exist on 2.x"


def test_card_fields_record_page_sections_and_dashboards_are_2x_documents_that_1x_would_refuse() -> None:
    two_only = ("CreateViewFields", "CreateViewFieldGroup", "UpdateViewField", "ListPageLayouts", "CreatePageLayout")
    for name in (*two_only, "CreatePageLayoutTab", "CreatePageLayoutWidget", "CreateViewSort", "CreateViewFilter"):
        assert validate(schema(Dialect.V1), parse(documents(Dialect.V2)[name])), f"{name} must not exist on 1.x"
    assert validate(schema(Dialect.V2), parse(documents(Dialect.V1)["CreateViewField"])), "1.x's is createCoreViewField"
