"""The metadata schema a Twenty server tells by introspection, built once per distinct answer,
and the documents already found valid against it.

Building a client schema from Twenty's introspection (~1 MB of JSON, ~50,000 fields) costs about
half a second of CPU, decoding it tens of milliseconds, and validating a document against it
tens more; the bridge connects for every provisioning, sync and check and sends the same few
dozen documents each time. An answer is kept with its build and compared whole (a byte or dict
comparison, far cheaper than a decode, a build or a hash), so a server whose schema changed (an
upgrade) is built anew, and two servers that speak the same schema share one build.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, build_client_schema, validate

KEEP = 8  # distinct schemas kept: a process talks to one Twenty (tests, to both dialects)

_built: list[tuple[dict[str, Any], GraphQLSchema]] = []  # the most recently used first
_decoded: list[tuple[bytes, Any]] = []  # introspection answers as received, and as decoded
_INTROSPECTION = b'{"data":{"__schema"'
_valid: weakref.WeakKeyDictionary[GraphQLSchema, set[str]] = weakref.WeakKeyDictionary()


def decode(body: bytes) -> Any:
    """JSON of a metadata answer (the transport's decoder). An introspection answer byte for
    byte the same as one decoded before is not decoded again (about 1 MB: tens of milliseconds
    each connect); nothing else is kept."""
    if not body.startswith(_INTROSPECTION):
        return json.loads(body)
    for seen, decoded in _decoded:
        if seen == body:
            return decoded
    decoded = json.loads(body)
    _decoded.insert(0, (body, decoded))
    del _decoded[KEEP:]
    return decoded


def client_schema(introspection: dict[str, Any]) -> GraphQLSchema:
    """The schema an introspection answer describes (the same object for the same answer)."""
    for n, (answer, schema) in enumerate(_built):
        if answer is introspection or answer == introspection:
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
