"""Errors, grouped by what the caller should do with them.

    BridgeError
    ├── RetryableError          try again later (backoff): throttling, 5xx, network, lock held
    │   ├── RateLimited         the service said "slow down"; `retry_after` seconds when known
    │   └── Unreachable         the service never answered (refused, unknown host): check its URL
    ├── SkippableError          this one record cannot be written; report it, carry on with the rest
    │   ├── RecordConflict      the record matches several existing records (e.g. by email)
    │   └── MetadataError       Twenty refused a metadata change (twenty/responses.py); the
    │                           provisioner stops at it, since what follows builds on it
    ├── BatchTooLarge           the server refused the batch size; send fewer
    └── FatalError              stop: the configuration or the remote side needs a person
        ├── ConfigError         a missing or malformed setting (names the variable, never its value)
        ├── AuthError           wrong key, expired token, missing permission
        │   └── NeedsReconnect  the Whop grant is gone; the admin must connect again

Which answer of Twenty or Whop raises which is one table per service (`twenty/responses.py`,
`whop/responses.py`); `bridge/retry.py` retries the retryable ones. Messages never include
secrets: callers pass names and ids, not tokens.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class RetryableError(BridgeError):
    """A transient failure. The same call may succeed later."""


class RateLimited(RetryableError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unreachable(RetryableError):
    """A service refused the connection or its host was not found before it ever answered.

    Retryable (an outage passes), but not worth minutes of backoff inside one call: the message
    names the setting to check."""


class SkippableError(BridgeError):
    """One record failed for a reason that retrying will not fix."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class RecordConflict(SkippableError):
    """The record would match more than one existing record; the bridge does not guess."""


class BatchTooLarge(BridgeError):
    """The server refused the number of records in one call; send fewer (`limit` if it said)."""

    def __init__(self, message: str, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class FatalError(BridgeError):
    """Stop and tell a person."""


class ConfigError(FatalError):
    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable
        self.problem = problem


class AuthError(FatalError):
    """Credentials are wrong or lack a permission."""


class NeedsReconnect(AuthError):
    """The Whop refresh token was refused (`invalid_grant`)."""
