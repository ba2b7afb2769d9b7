"""Log lines are JSON, carry the run or event they belong to, and never a secret."""

from __future__ import annotations

import json
import logging

import pytest

from bridge.logs import JsonFormatter, RedactingFilter, bound


def _line(message: str, *args: object, secrets: tuple[str, ...] = ()) -> dict[str, object]:
    record = logging.LogRecord("bridge.test", logging.WARNING, __file__, 1, message, args, None)
    RedactingFilter(secrets).filter(record)
    return dict(json.loads(JsonFormatter().format(record)))


def test_a_line_written_inside_a_run_carries_its_run_id() -> None:
    with bound(run_id=42, company_id="biz_x"):
        entry = _line("wrote %d people", 60)
    assert entry["msg"] == "wrote 60 people"
    assert entry["run_id"] == 42 and entry["company_id"] == "biz_x"
    assert "run_id" not in _line("outside")


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
        "secret ws_live_0123456789abcdef",
        '{"refresh_token": "rt-abcdef123456"}',
        "client_secret=topsecretvalue&grant_type=refresh_token",
    ],
)
def test_secret_shapes_are_scrubbed(text: str) -> None:
    entry = _line(text)
    assert "[redacted]" in str(entry["msg"])
    for fragment in ("eyJhbGciOiJIUzI1NiJ9", "0123456789abcdef", "rt-abcdef123456", "topsecretvalue"):
        assert fragment not in str(entry["msg"])


def test_configured_secret_values_are_scrubbed_wherever_they_appear() -> None:
    entry = _line("twenty said no to key %s", "tw-key-value-1234", secrets=("tw-key-value-1234",))
    assert "tw-key-value-1234" not in json.dumps(entry)
