"""A database the CLI cannot reach ends a command with one line naming what to check, never a
traceback, and never the database password. Real `whop-twenty-bridge` processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.loopback import free_port

PASSWORD = "pg-pass-SECRET-42"


def bridge(database_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
        "BRIDGE_ADMIN_PASSWORD": "a-long-admin-password-for-tests",
    }
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: database"), lines[0]
    return lines[0]


@pytest.mark.parametrize("command", [["status"], ["webhooks", "list"], ["webhooks", "replay", "--failed"], ["serve"]])
def test_a_postgresql_that_is_down_ends_each_command_with_one_line(command: list[str]) -> None:
    port = free_port()  # nothing listens there: connection refused
    line = one_error_line(bridge(f"postgresql://bridge:{PASSWORD}@127.0.0.1:{port}/bridge", *command))
    assert f"127.0.0.1:{port}" in line and "DATABASE_URL" in line and "server is running" in line


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP port that accepts connections and never says a word (a hung or firewalled server),
    and the connections made to it (complete once the block has ended)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), held
    finally:
        stop.set()
        thread.join(5)
        listener.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:  # any a slow accept loop left waiting in the backlog count too
                held.append(listener.accept()[0])
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.slow
def test_a_postgresql_that_never_answers_ends_the_command_within_the_connect_timeout() -> None:
    """No clock is read: without a connect timeout the command would hang until `timeout=90`
    ends the test; with one it gives up by itself after a single attempt, not retrying."""
    with silent_server() as (port, accepted):
        line = one_error_line(bridge(f"postgresql://bridge:{PASSWORD}@127.0.0.1:{port}/bridge", "status", timeout=90))
    assert len(accepted) == 1, f"{len(accepted)} connections to a server that never answers"
    assert f"127.0.0.1:{port}" in line and "timeout" in line


def test_an_sqlite_file_that_cannot_be_created_names_its_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database's directory should be")
    path = blocker / "bridge.db"
    for command in (["status"], ["serve"]):
        line = one_error_line(bridge(f"sqlite:///{path}", *command))
        assert str(path) in line and "writable" in line and "DATABASE_URL" in line
