"""The metadata schema a Twenty server tells by introspection, built once per distinct answer,
and the documents already found valid against it.

Building a client schema from Twenty's introspection (~1 MB of JSON, ~50,000 fields) costs about
half a second of CPU, and validating a document against it tens of milliseconds; the bridge
connects for every provisioning and check and sends the same few dozen documents each time. The
answer is kept with its build and compared whole (a dict comparison, far cheaper than a build or
a hash of its JSON), so a server whose schema changed (an upgrade) is built anew, and two
servers that speak the same schema share one build.
"""

from __future__ import annotations

import weakref
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, build_client_schema, validate

KEEP = 8  # distinct schemas kept: a process talks to one Twenty (tests, to both dialects)

_built: list[tuple[dict[str, Any], GraphQLSchema]] = []  # the most recently used first
_valid: weakref.WeakKeyDictionary[GraphQLSchema, set[str]] = weakref.WeakKeyDictionary()


def client_schema(introspection: dict[str, Any]) -> GraphQLSchema:
    """The schema an introspection answer describes (the same object for the same answer)."""
    for n, (answer, schema) in enumerate(_built):
        if answer == introspection:
            _built.insert(0, _built.pop(n))
            return schema
    schema = build_client_schema(introspection)  # type: ignore[arg-type]
    _built.insert(0, (introspection, schema))
    del _built[KEEP:]
    return schema


def document_errors(schema: GraphQLSchema, document: DocumentNode, source: str) -> list[GraphQLError]:
    """Why `document` (whose text is `source`) is not valid against `schema`; [] if it is.
    A document found valid is not validated again against the same schema."""
    known = _valid.setdefault(schema, set())
    if source in known:
        return []
    errors = list(validate(schema, document))
    if not errors:
        known.add(source)
    return errors
