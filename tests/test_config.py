"""Configuration errors name the variable in one line and never print a secret's value."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from bridge.config import load_settings
from bridge.errors import ConfigError


def test_defaults_need_nothing_and_use_an_sqlite_file_in_the_working_directory() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///whop-twenty-bridge.db"
    assert settings.whop_api_url == "https://api.whop.com"
    assert settings.twenty_batch_size == 200


def test_a_missing_required_variable_is_named() -> None:
    with pytest.raises(ConfigError, match=r"^TWENTY_URL is not set$"):
        load_settings().require("TWENTY_URL")


def test_a_malformed_fernet_key_is_named_and_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_SECRET_KEY", "not-a-key-SUPERSECRET")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.variable == "BRIDGE_SECRET_KEY"
    assert "SUPERSECRET" not in str(info.value)


def test_several_fernet_keys_first_encrypts_all_decrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("BRIDGE_SECRET_KEY", old)
    token = load_settings().fernet.encrypt(b"refresh-token")
    monkeypatch.setenv("BRIDGE_SECRET_KEY", f"{new}, {old}")
    rotated = load_settings()
    assert rotated.fernet.decrypt(token) == b"refresh-token"
    assert Fernet(new.encode()).decrypt(rotated.fernet.encrypt(b"x")) == b"x"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TWENTY_URL", "twenty.example.com"),
        ("DATABASE_URL", "mysql://root:hunter2-SECRET@db/x"),
        ("TWENTY_BATCH_SIZE", "500"),
        ("BRIDGE_STAGE_POLICY", "sideways"),
    ],
)
def test_a_malformed_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.variable == variable
    assert "SECRET" not in str(info.value)


def test_values_come_from_a_dotenv_file_in_the_working_directory(tmp_path: object) -> None:
    with open(".env", "w") as fh:
        fh.write("TWENTY_URL=http://twenty.local:3000/\nTWENTY_BATCH_SIZE=120\n")
    settings = load_settings()
    assert settings.twenty_url == "http://twenty.local:3000"
    assert settings.twenty_batch_size == 120


def test_the_command_stops_with_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWENTY_API_KEY", "tw-SECRET-VALUE")
    proc = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "provision", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: configuration: TWENTY_URL is not set"]
    assert "SECRET" not in proc.stdout + proc.stderr


def test_an_empty_variable_counts_as_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHOP_API_KEY", "")
    monkeypatch.setenv("TWENTY_BATCH_SIZE", "")
    settings = load_settings()
    assert settings.whop_api_key is None and settings.twenty_batch_size == 200
