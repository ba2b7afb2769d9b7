"""The command line's output."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bridge import cli
from bridge.sync.engine import SyncResult


def test_the_sync_summary_reports_twenty_reads_and_writes_separately(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=200))
    result = SyncResult(run_id=3, status="succeeded", counts={"person": {"updated": 2}}, problems=[])
    result.twenty_calls, result.twenty_writes, result.whop_calls = 7, 5, 11

    cli.print_sync_summary(result, dry_run=False)

    assert "Twenty calls: 7 (5 writes, 2 reads); Whop calls: 11" in out.getvalue()
