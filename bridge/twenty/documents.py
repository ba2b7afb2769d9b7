"""The GraphQL documents the bridge sends to Twenty's metadata API, per dialect.

Twenty 1.x and 2.x differ in a few names (`createCoreView` vs `createView`, navigation items
exist only on 2.x). Every document is kept to fields present in the dialect's schema; a test
validates each one against `metadata-1.x.graphql` and `metadata-2.43.graphql`, and at run time
gql validates it again against the schema the server itself reports.
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
  updateOneField(input: $input) { id name type options }
}
"""

LIST_VIEWS = {
    Dialect.V2: """
query ListViews($objectMetadataId: String) {
  getViews(objectMetadataId: $objectMetadataId) { id name type objectMetadataId mainGroupByFieldMetadataId }
}
""",
    Dialect.V1: """
query ListViews($objectMetadataId: String) {
  getCoreViews(objectMetadataId: $objectMetadataId) { id name type objectMetadataId }
}
""",
}

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
    }
    if dialect is Dialect.V1:
        docs["CreateViewGroup"] = CREATE_VIEW_GROUP_V1
    else:
        docs["ListNavigationItems"] = LIST_NAVIGATION_ITEMS
        docs["CreateNavigationItem"] = CREATE_NAVIGATION_ITEM
    return docs
