"""Logging: one JSON object per line, with secrets scrubbed before anything is written.

Every record can carry context (`run_id`, `webhook_id`, `company_id`) through `extra=`. The
redaction filter masks bearer tokens, Fernet keys, Whop secrets and configured secret values
wherever they appear in a message, so a careless log line cannot leak them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

CONTEXT_KEYS = (
    "run_id",
    "webhook_id",
    "company_id",
    "event_type",
    "object",
    "whop_id",
    "status",
    "duration_ms",
)

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\b(ws_)[A-Za-z0-9_]{8,}"),
    re.compile(r"(?i)((?:access|refresh)_token[\"']?\s*[:=]\s*[\"']?)[^\"'\s,}]+"),
    re.compile(r"(?i)((?:client_secret|api_key|password|code_verifier)[\"']?\s*[:=]\s*[\"']?)[^\"'\s,}&]+"),
]


# Context a task binds once (a run id, the webhook ids being applied) and every log line carries.
_context: ContextVar[dict[str, object] | None] = ContextVar("bridge_log_context", default=None)


@contextlib.contextmanager
def bound(**values: object) -> Iterator[None]:
    """`with bound(run_id=7):` adds run_id to every log line written inside, in this task."""
    token = _context.set({**(_context.get() or {}), **values})
    try:
        yield
    finally:
        _context.reset(token)


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in (_context.get() or {}).items():
            entry.setdefault(key, value)
        for key in CONTEXT_KEYS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", *, secrets: Iterable[str] = (), json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; keep it quiet unless debugging.
    logging.getLogger("httpx").setLevel(logging.WARNING if level.upper() != "DEBUG" else logging.DEBUG)
    logging.getLogger("gql").setLevel(logging.WARNING)
    # Alembic is imported only when a store needs migrating, after this: its import-time
    # "setup plugin" lines and per-migration chatter would otherwise reach the log at INFO.
    logging.getLogger("alembic").setLevel(logging.WARNING)
