"""The GraphQL documents the bridge sends to Twenty's metadata API, per dialect.

Twenty 1.x and 2.x differ in a few names (`createCoreView` vs `createView`, one
`createCoreViewField` per field vs `createManyViewFields`); navigation items, record-page
sections and tabs, and dashboards (page layouts, view field groups) exist only on 2.x. Every document is kept to fields
present in the dialect's schema; a test validates each one against `metadata-1.x.graphql` and
`metadata-2.43.graphql`, and at run time gql validates it again against the schema the server
itself reports.
"""

from __future__ import annotations

from enum import StrEnum


class Dialect(StrEnum):
    V1 = "1.x"
    V2 = "2.x"


_FIELD = """
        id name type label description isActive isSystem isNullable isUnique defaultValue options settings
        relation {
          type
          targetObjectMetadata { id nameSingular }
          targetFieldMetadata { id name }
        }
"""

LIST_OBJECTS = (
    """
query ListObjects($after: ConnectionCursor) {
  objects(paging: { first: 1000, after: $after }) {
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id nameSingular namePlural labelSingular labelPlural isActive isSystem labelIdentifierFieldMetadataId
        fieldsList {"""
    + _FIELD
    + """        }
      }
    }
  }
}
"""
)

CREATE_OBJECT = """
mutation CreateObject($input: CreateOneObjectInput!) {
  createOneObject(input: $input) { id nameSingular namePlural labelIdentifierFieldMetadataId }
}
"""

CREATE_FIELD = (
    """
mutation CreateField($input: CreateOneFieldMetadataInput!) {
  createOneField(input: $input) {"""
    + _FIELD
    + """  }
}
"""
)

UPDATE_FIELD = """
mutation UpdateField($input: UpdateOneFieldMetadataInput!) {
  updateOneField(input: $input) { id name type label description options }
}
"""

# 2.x answers a view with its fields, Kanban columns and record-page sections in one query;
# 1.x has no nested selections on CoreView, so its fields and groups are read per view.
_VIEW_V2 = """
    id name type key objectMetadataId mainGroupByFieldMetadataId
    kanbanAggregateOperation kanbanAggregateOperationFieldMetadataId
    viewFields { id fieldMetadataId isVisible position size viewFieldGroupId createdAt updatedAt }
    viewGroups { id fieldValue position }
    viewFieldGroups { id name position }
"""

LIST_VIEWS = {
    Dialect.V2: """
query ListViews($objectMetadataId: String) {
  getViews(objectMetadataId: $objectMetadataId) {"""
    + _VIEW_V2
    + """  }
}
""",
    Dialect.V1: """
query ListViews($objectMetadataId: String) {
  getCoreViews(objectMetadataId: $objectMetadataId) {
    id name type key objectMetadataId kanbanAggregateOperation kanbanAggregateOperationFieldMetadataId
  }
}
""",
}

# 2.x only: one view by id (a record page's FIELDS widget names its view).
GET_VIEW_V2 = (
    """
query GetView($id: String!) {
  getView(id: $id) {"""
    + _VIEW_V2
    + """  }
}
"""
)

CREATE_VIEW = {
    Dialect.V2: """
mutation CreateView($input: CreateViewInput!) {
  createView(input: $input) { id name type mainGroupByFieldMetadataId viewGroups { fieldValue } }
}
""",
    Dialect.V1: """
mutation CreateView($input: CreateViewInput!) {
  createCoreView(input: $input) { id name type }
}
""",
}

# 1.x only: a Kanban's columns are view groups on the SELECT field, created one by one.
CREATE_VIEW_GROUP_V1 = """
mutation CreateViewGroup($input: CreateViewGroupInput!) {
  createCoreViewGroup(input: $input) { id fieldValue }
}
"""

# 1.x only: a view's fields and Kanban columns.
LIST_VIEW_FIELDS_V1 = """
query ListViewFields($viewId: String!) {
  getCoreViewFields(viewId: $viewId) { id fieldMetadataId isVisible position size createdAt updatedAt }
}
"""

LIST_VIEW_GROUPS_V1 = """
query ListViewGroups($viewId: String) {
  getCoreViewGroups(viewId: $viewId) { id fieldMetadataId fieldValue position }
}
"""

UPDATE_VIEW_FIELD_V1 = """
mutation UpdateViewField($id: String!, $input: UpdateViewFieldInput!) {
  updateCoreViewField(id: $id, input: $input) { id isVisible position }
}
"""

# 1.x has no createMany for view fields: one call per field.
CREATE_VIEW_FIELD_V1 = """
mutation CreateViewField($input: CreateViewFieldInput!) {
  createCoreViewField(input: $input) { id fieldMetadataId position }
}
"""

# 2.x only: a Kanban's card fields, a list's columns, a record page's fields, in one call.
CREATE_VIEW_FIELDS_V2 = """
mutation CreateViewFields($inputs: [CreateViewFieldInput!]!) {
  createManyViewFields(inputs: $inputs) { id fieldMetadataId position viewFieldGroupId }
}
"""

# 2.x only: Kanban columns for options added to a field after the view was made.
CREATE_VIEW_GROUPS_V2 = """
mutation CreateViewGroups($inputs: [CreateViewGroupInput!]!) {
  createManyViewGroups(inputs: $inputs) { id fieldValue position }
}
"""

# 2.x only: page layouts. A record page is a RECORD_PAGE layout whose FIELDS widgets each show
# one view (that view's field groups are the page's sections: "General", …, "System"); a
# dashboard is a DASHBOARD layout. Tabs and widgets carry their times: the bridge adds to one it
# made only while nobody has changed it since.
_PAGE_LAYOUT = """
    id name type objectMetadataId createdAt updatedAt
    tabs {
      id title position layoutMode createdAt updatedAt
      widgets {
        id title type createdAt updatedAt
        configuration {
          ... on FieldsConfiguration { viewId }
          ... on FieldConfiguration { viewId }
          ... on RecordTableConfiguration { viewId }
        }
      }
    }
"""

LIST_PAGE_LAYOUTS = (
    """
query ListPageLayouts($objectMetadataId: String, $pageLayoutType: PageLayoutType) {
  getPageLayouts(objectMetadataId: $objectMetadataId, pageLayoutType: $pageLayoutType) {"""
    + _PAGE_LAYOUT
    + """  }
}
"""
)

CREATE_PAGE_LAYOUT = """
mutation CreatePageLayout($input: CreatePageLayoutInput!) {
  createPageLayout(input: $input) { id name type createdAt updatedAt }
}
"""

CREATE_PAGE_LAYOUT_TAB = """
mutation CreatePageLayoutTab($input: CreatePageLayoutTabInput!) {
  createPageLayoutTab(input: $input) { id title position layoutMode createdAt updatedAt }
}
"""

# The input differs between 2.x releases (2.21 requires `gridPosition`; later ones take
# `position` only): the client fills it from the server's own schema.
CREATE_PAGE_LAYOUT_WIDGET = """
mutation CreatePageLayoutWidget($input: CreatePageLayoutWidgetInput!) {
  createPageLayoutWidget(input: $input) { id title type createdAt updatedAt }
}
"""

# 2.x only: the sort and filters of a table widget's own view.
CREATE_VIEW_SORT = """
mutation CreateViewSort($input: CreateViewSortInput!) {
  createViewSort(input: $input) { id fieldMetadataId direction }
}
"""

CREATE_VIEW_FILTER = """
mutation CreateViewFilter($input: CreateViewFilterInput!) {
  createViewFilter(input: $input) { id fieldMetadataId operand value }
}
"""

# A view's own settings: a Kanban's column aggregate.
UPDATE_VIEW = {
    Dialect.V2: """
mutation UpdateView($id: String!, $input: UpdateViewInput!) {
  updateView(id: $id, input: $input) { id kanbanAggregateOperation kanbanAggregateOperationFieldMetadataId }
}
""",
    Dialect.V1: """
mutation UpdateView($id: String!, $input: UpdateViewInput!) {
  updateCoreView(id: $id, input: $input) { id kanbanAggregateOperation kanbanAggregateOperationFieldMetadataId }
}
""",
}

CREATE_VIEW_FIELD_GROUP = """
mutation CreateViewFieldGroup($input: CreateViewFieldGroupInput!) {
  createViewFieldGroup(input: $input) { id name position }
}
"""

UPDATE_VIEW_FIELD_GROUP = """
mutation UpdateViewFieldGroup($input: UpdateViewFieldGroupInput!) {
  updateViewFieldGroup(input: $input) { id name position }
}
"""

UPDATE_VIEW_FIELD = """
mutation UpdateViewField($input: UpdateViewFieldInput!) {
  updateViewField(input: $input) { id viewFieldGroupId position isVisible }
}
"""

UPDATE_VIEW_FIELD_V1 = """
mutation UpdateViewField($id: String!, $input: UpdateViewFieldInput!) {
  updateCoreViewField(id: $id, input: $input) { id position isVisible }
}
"""

# 2.x only.
LIST_NAVIGATION_ITEMS = """
query ListNavigationItems {
  navigationMenuItems { id type name link }
}
"""

CREATE_NAVIGATION_ITEM = """
mutation CreateNavigationItem($input: CreateNavigationMenuItemInput!) {
  createNavigationMenuItem(input: $input) { id type name link }
}
"""


def documents(dialect: Dialect) -> dict[str, str]:
    """Every document the bridge may send to a server of this dialect (validated in tests)."""
    docs = {
        "ListObjects": LIST_OBJECTS,
        "CreateObject": CREATE_OBJECT,
        "CreateField": CREATE_FIELD,
        "UpdateField": UPDATE_FIELD,
        "ListViews": LIST_VIEWS[dialect],
        "CreateView": CREATE_VIEW[dialect],
        "UpdateView": UPDATE_VIEW[dialect],
    }
    if dialect is Dialect.V1:
        docs["CreateViewGroup"] = CREATE_VIEW_GROUP_V1
        docs["ListViewFields"] = LIST_VIEW_FIELDS_V1
        docs["ListViewGroups"] = LIST_VIEW_GROUPS_V1
        docs["CreateViewField"] = CREATE_VIEW_FIELD_V1
        docs["UpdateViewField"] = UPDATE_VIEW_FIELD_V1
    else:
        docs["ListNavigationItems"] = LIST_NAVIGATION_ITEMS
        docs["CreateNavigationItem"] = CREATE_NAVIGATION_ITEM
        docs["CreateViewFields"] = CREATE_VIEW_FIELDS_V2
        docs["CreateViewGroups"] = CREATE_VIEW_GROUPS_V2
        docs["ListPageLayouts"] = LIST_PAGE_LAYOUTS
        docs["CreatePageLayout"] = CREATE_PAGE_LAYOUT
        docs["CreatePageLayoutTab"] = CREATE_PAGE_LAYOUT_TAB
        docs["CreatePageLayoutWidget"] = CREATE_PAGE_LAYOUT_WIDGET
        docs["CreateViewSort"] = CREATE_VIEW_SORT
        docs["CreateViewFilter"] = CREATE_VIEW_FILTER
        docs["GetView"] = GET_VIEW_V2
        docs["CreateViewFieldGroup"] = CREATE_VIEW_FIELD_GROUP
        docs["UpdateViewFieldGroup"] = UPDATE_VIEW_FIELD_GROUP
        docs["UpdateViewField"] = UPDATE_VIEW_FIELD
    return docs
