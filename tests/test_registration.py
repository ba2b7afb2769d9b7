"""Registering a company's webhook at Whop: what makes the bridge update the one it keeps."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import WHOP_API_VERSION_DATE
from bridge.registration import EVENTS, _needs_update

URL = "https://bridge.example/webhooks/whop"
AS_ASKED: dict[str, Any] = {
    "id": "hook_1",
    "url": URL,
    "events": list(EVENTS),
    "api_version_date": WHOP_API_VERSION_DATE,
    "enabled": True,
}


@pytest.mark.parametrize(
    ("changes", "update"),
    [
        ({}, False),
        ({"events": list(reversed(EVENTS))}, False),  # the order of the events does not matter
        ({"url": "https://old.example/webhooks/whop"}, True),
        ({"events": list(EVENTS[1:])}, True),
        ({"events": None}, True),
        ({"api_version_date": "2025-01-01"}, True),
        ({"enabled": False}, True),
        ({"enabled": None}, True),
    ],
)
def test_a_kept_webhook_is_updated_only_when_it_differs_from_what_the_bridge_asks(
    changes: dict[str, Any], update: bool
) -> None:
    assert _needs_update({**AS_ASKED, **changes}, URL) is update
