"""Fake Twenty workspaces the bridge has provisioned, shared per test session.

Provisioning through the metadata API is about 90 GraphQL documents, each validated by the
client and by the fake: seconds per test on a busy 2-core machine. The first test that asks
for a dialect and public URL provisions a fresh fake with the bridge's own `provision`; every
later one gets a copy of that workspace (unpickled: several times faster than a deep copy),
which is what provisioning would have made. Each copy is the test's own, so a test that changes
the schema or writes records changes only its copy. Tests of provisioning itself start from an
empty fake instead.
"""

from __future__ import annotations

import pickle

import httpx

from bridge.twenty.data import TwentyDataClient
from bridge.twenty.metadata import MetadataClient
from bridge.twenty.provision import provision
from bridge.twenty.schema import load_data_model
from bridge.twenty.view_records import ViewRecordsApi
from fakes.twenty import FakeTwenty
from fakes.twenty.workspace import Workspace

_KEY = "provisioning-key"
_templates: dict[tuple[str, str], bytes] = {}


async def _template(dialect: str, public_url: str) -> bytes:
    found = _templates.get((dialect, public_url))
    if found is None:
        fresh = FakeTwenty(dialect=dialect, api_key=_KEY)
        transport = httpx.ASGITransport(app=fresh)
        async with (
            MetadataClient("http://twenty.test", _KEY, transport=transport) as meta,
            TwentyDataClient("http://twenty.test", _KEY, transport=transport) as data,
        ):
            # As `services.provision_workspace` does: with the view records 1.x's screens show.
            await provision(meta, load_data_model(), public_url, view_records=ViewRecordsApi(data))
        # Two tests on two event loops may both get here; either workspace is as good.
        blob = pickle.dumps(fresh.workspace, protocol=pickle.HIGHEST_PROTOCOL)
        found = _templates.setdefault((dialect, public_url), blob)
    return found


async def provisioned_twenty(dialect: str, api_key: str, public_url: str = "http://bridge.test") -> FakeTwenty:
    """A new FakeTwenty whose workspace `provision(…, public_url)` has set up, stats at zero."""
    template = await _template(dialect, public_url)
    twenty = FakeTwenty(dialect=dialect, api_key=api_key)
    workspace: Workspace = pickle.loads(template)  # noqa: S301 (bytes this process pickled)
    twenty.workspace = workspace
    return twenty
