"""Settings, read from the environment and an optional `.env` file.

Every value is validated once at start-up. A bad value becomes one `ConfigError` line that names
the variable and never echoes a secret's value.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.errors import ConfigError

WHOP_API_VERSION_DATE = "2026-10-15-1"

# The admin password `serve` accepts: long enough that the login throttle's pace (about two guesses a
# minute at worst) never gets near it, and not a few characters repeated.
MIN_PASSWORD_LENGTH = 12
MIN_PASSWORD_DISTINCT = 5

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Variables whose values must never be shown, even when they are malformed.
SECRET_VARIABLES = frozenset(
    {
        "TWENTY_API_KEY",
        "BRIDGE_SECRET_KEY",
        "WHOP_API_KEY",
        "WHOP_CLIENT_SECRET",
        "WHOP_WEBHOOK_SECRET",
        "BRIDGE_ADMIN_PASSWORD",
        "DATABASE_URL",  # may carry a password
    }
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
        # `WHOP_API_KEY=` in a .env file means "not set", not an empty key.
        env_ignore_empty=True,
    )

    # Twenty
    twenty_url: str | None = Field(default=None, alias="TWENTY_URL")
    twenty_api_key: SecretStr | None = Field(default=None, alias="TWENTY_API_KEY")
    twenty_batch_size: int = Field(default=200, ge=1, le=200, alias="TWENTY_BATCH_SIZE")
    twenty_requests_per_minute: int = Field(default=100, ge=1, le=100_000, alias="TWENTY_REQUESTS_PER_MINUTE")
    twenty_timeout_seconds: float = Field(default=30.0, gt=0, alias="TWENTY_TIMEOUT_SECONDS")

    # The bridge itself
    database_url: str = Field(default="sqlite:///whop-twenty-bridge.db", alias="DATABASE_URL")
    bridge_secret_key: SecretStr | None = Field(default=None, alias="BRIDGE_SECRET_KEY")
    bridge_public_url: str = Field(default="http://127.0.0.1:8000", alias="BRIDGE_PUBLIC_URL")
    bridge_admin_password: SecretStr | None = Field(default=None, alias="BRIDGE_ADMIN_PASSWORD")
    bridge_schema_dir: Path | None = Field(default=None, alias="BRIDGE_SCHEMA_DIR")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")

    # Whop
    whop_api_url: str = Field(default="https://api.whop.com", alias="WHOP_API_URL")
    whop_api_key: SecretStr | None = Field(default=None, alias="WHOP_API_KEY")
    whop_company_id: str | None = Field(default=None, alias="WHOP_COMPANY_ID")
    whop_client_id: str | None = Field(default=None, alias="WHOP_CLIENT_ID")
    whop_client_secret: SecretStr | None = Field(default=None, alias="WHOP_CLIENT_SECRET")
    # Comma-separated: several secrets are accepted while one is being rotated.
    whop_webhook_secret: SecretStr | None = Field(default=None, alias="WHOP_WEBHOOK_SECRET")
    whop_requests_per_second: float = Field(default=8.0, gt=0, alias="WHOP_REQUESTS_PER_SECOND")

    # Sync policy
    stage_policy: str = Field(default="advance", alias="BRIDGE_STAGE_POLICY")
    reconcile_interval_minutes: int = Field(default=60, ge=1, alias="BRIDGE_RECONCILE_INTERVAL_MINUTES")
    inbox_retention_days: int = Field(default=30, ge=1, alias="BRIDGE_INBOX_RETENTION_DAYS")
    # `sync --deep` reports records a person deleted in Twenty; it restores them only when allowed.
    restore_deleted: bool = Field(default=False, alias="BRIDGE_RESTORE_DELETED")

    # The HTTP server (`bridge/server.py`): a slow or oversized request is cut off before it can
    # hold memory or a socket for long. Whop's deliveries are a few KiB and arrive at once.
    max_connections: int = Field(default=100, ge=1, le=100_000, alias="BRIDGE_MAX_CONNECTIONS")
    # One client address (not a trusted proxy) holds at most this many; unset: 20, or the cap if less.
    max_connections_per_client: int | None = Field(
        default=None, ge=1, le=100_000, alias="BRIDGE_MAX_CONNECTIONS_PER_CLIENT"
    )
    # Kept for Whop's deliveries: other routes' requests use at most the cap minus this at once
    # (0: none kept); unset: 10, or half the cap if less.
    webhook_connections: int | None = Field(default=None, ge=0, le=50_000, alias="BRIDGE_WEBHOOK_CONNECTIONS")
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600, alias="BRIDGE_HEADER_TIMEOUT_SECONDS")
    body_timeout_seconds: float = Field(default=20.0, gt=0, le=3600, alias="BRIDGE_BODY_TIMEOUT_SECONDS")
    max_body_bytes: int = Field(default=262_144, ge=4096, le=64 * 1024 * 1024, alias="BRIDGE_MAX_BODY_BYTES")

    # Admin sessions end after this long without a request, and this long after login regardless.
    session_idle_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60, alias="BRIDGE_SESSION_IDLE_MINUTES")
    session_max_hours: int = Field(default=12, ge=1, le=30 * 24, alias="BRIDGE_SESSION_MAX_HOURS")
    # Reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For is believed.
    trusted_proxies: str | None = Field(default=None, alias="BRIDGE_TRUSTED_PROXIES")

    @field_validator("twenty_url", "bridge_public_url", "whop_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None if value == "" else value
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("bridge_secret_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        for key in _split(value.get_secret_value()):
            try:
                Fernet(key)
            except (ValueError, TypeError):
                raise ValueError(
                    "must be one or more Fernet keys (32 url-safe base64 bytes), comma-separated"
                ) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str | None) -> str | None:
        for part in _split(value or ""):
            try:
                network = ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError("must be IP addresses or CIDR networks, comma-separated (e.g. 10.0.0.0/8)") from None
            if network.prefixlen == 0:
                raise ValueError("must not trust every address (anyone could then pick their own)")
        return value

    @field_validator("max_connections_per_client")
    @classmethod
    def _per_client(cls, value: int | None, info: ValidationInfo) -> int | None:
        cap = info.data.get("max_connections")
        if value is not None and cap is not None and value > cap:
            raise ValueError(f"must not be more than BRIDGE_MAX_CONNECTIONS ({cap})")
        return value

    @field_validator("webhook_connections")
    @classmethod
    def _webhook_share(cls, value: int | None, info: ValidationInfo) -> int | None:
        cap = info.data.get("max_connections")
        if value is not None and cap is not None and value > cap // 2:
            raise ValueError(f"must be at most half of BRIDGE_MAX_CONNECTIONS ({cap // 2})")
        return value

    @field_validator("stage_policy")
    @classmethod
    def _stage_policy(cls, value: str) -> str:
        if value not in {"advance", "create-only", "off"}:
            raise ValueError("must be one of: advance, create-only, off")
        return value

    # Derived values -------------------------------------------------------------------------

    @cached_property
    def fernet(self) -> MultiFernet:
        """The first key encrypts; every key decrypts, so a key can be rotated in."""
        if self.bridge_secret_key is None:
            raise ConfigError(
                "BRIDGE_SECRET_KEY",
                "is required to store tokens (generate one with `whop-twenty-bridge keygen`)",
            )
        return MultiFernet([Fernet(k) for k in _split(self.bridge_secret_key.get_secret_value())])

    @property
    def connections_per_client(self) -> int:
        if self.max_connections_per_client is not None:
            return self.max_connections_per_client
        return min(20, self.max_connections)

    @property
    def connections_kept_for_webhooks(self) -> int:
        if self.webhook_connections is not None:
            return self.webhook_connections
        return min(10, self.max_connections // 2)

    @property
    def trusted_networks(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(part, strict=False) for part in _split(self.trusted_proxies or "")]

    def require_admin_password(self) -> None:
        """`serve` starts only with an admin password that meets `password_problem`'s rule."""
        password = self.bridge_admin_password.get_secret_value() if self.bridge_admin_password else None
        problem = password_problem(password)
        if problem:
            raise ConfigError("BRIDGE_ADMIN_PASSWORD", problem)

    @property
    def webhook_secrets(self) -> list[str]:
        if self.whop_webhook_secret is None:
            return []
        return _split(self.whop_webhook_secret.get_secret_value())

    def require(self, *names: str) -> None:
        """Fail with one clear line when a value this command needs is missing."""
        for name in names:
            field = _FIELD_BY_ENV[name]
            value = getattr(self, field)
            if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
                raise ConfigError(name, "is not set")


def password_problem(password: str | None) -> str | None:
    """Why `password` is too weak for the admin page, in words that never repeat it; None if fine.

    The rule: at least 12 characters, at least 5 of them different. A passphrase of three or
    more words passes, and so does `openssl rand -base64 24`.
    """
    if password is None:
        return "is not set"
    if not password.strip():
        return "is blank"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"needs {MIN_PASSWORD_LENGTH} or more characters"
    if len(set(password)) < MIN_PASSWORD_DISTINCT:
        return "uses too few different characters"
    return None


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


_FIELD_BY_ENV: dict[str, str] = {(info.alias or name).upper(): name for name, info in Settings.model_fields.items()}


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(name, message) from None
