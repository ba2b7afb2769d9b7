"""GraphQL documents parsed once: the bridge sends the same few dozen over and over, and both
endpoints of the fake read them (a parse error is raised each time, as before)."""

from __future__ import annotations

import functools

from graphql import DocumentNode, parse


@functools.lru_cache(maxsize=512)
def parsed(query: str) -> DocumentNode:
    return parse(query)
