"""The `serve` command and the access-log scrubbing it installs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from starlette.applications import Starlette

from bridge import cli
from bridge.web.app import AccessLogScrubber


def test_serve_runs_uvicorn_with_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kwargs: Any) -> None:
        seen["app"], seen["kwargs"] = app, kwargs

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr("bridge.logs.configure_logging", lambda *a, **k: None)  # keep pytest's logging
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "filters", [])
    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("BRIDGE_ADMIN_PASSWORD", "pw-for-the-test")
    result = CliRunner().invoke(cli.main, ["serve"])
    assert result.exit_code == 0, result.output
    assert isinstance(seen["app"], Starlette)
    assert seen["kwargs"]["host"] == "127.0.0.1" and seen["kwargs"]["port"] == 8000
    result = CliRunner().invoke(cli.main, ["serve", "--host", "0.0.0.0", "--port", "9001"])
    assert result.exit_code == 0 and seen["kwargs"]["host"] == "0.0.0.0" and seen["kwargs"]["port"] == 9001
    assert any(isinstance(f, AccessLogScrubber) for f in logging.getLogger("uvicorn.access").filters)


def test_access_log_lines_lose_their_query_strings() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/oauth/callback?code=SECRETCODE&state=abc", "1.1", 303),
        None,
    )
    assert AccessLogScrubber().filter(record)
    assert "SECRETCODE" not in record.getMessage() and "/oauth/callback?[redacted]" in record.getMessage()


@pytest.mark.parametrize(
    ("role", "runs_workers", "has_admin_page"), [("all", True, True), ("web", False, True), ("worker", True, False)]
)
def test_serve_roles_split_webhook_intake_from_applying_them(
    monkeypatch: pytest.MonkeyPatch, role: str, runs_workers: bool, has_admin_page: bool
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app))
    monkeypatch.setattr("bridge.logs.configure_logging", lambda *a, **k: None)
    monkeypatch.setenv("BRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("BRIDGE_ADMIN_PASSWORD", "pw-for-the-test")
    result = CliRunner().invoke(cli.main, ["serve", "--role", role])
    assert result.exit_code == 0, result.output
    paths = {getattr(r, "path", None) for r in seen["app"].routes}
    assert {"/healthz", "/readyz", "/metrics"} <= paths
    assert ("/webhooks/whop" in paths) is has_admin_page and ("/" in paths) is has_admin_page
    assert seen["app"].state.runs_workers is runs_workers  # its lifespan starts the worker and scheduler
    assert ("worker:" in result.output) is (role == "worker")


def test_serve_refuses_an_unknown_role() -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--role", "both"])
    assert result.exit_code == 2 and "both" in result.output
