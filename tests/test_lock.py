"""Pinned dependencies: the lock files pin every release CI and the image install, with hashes,
and the audit knows why it can or cannot reach a vulnerability database.

requirements.lock (the image) and requirements-dev.lock (scripts/test, CI) are made by
scripts/lock from pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import metadata
from pathlib import Path
from threading import Thread
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
INSTALLER_LOCK = ROOT / "requirements-installer.lock"


def load_audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit", ROOT / "scripts" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


audit = load_audit()


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(r) for r in names]


def blocks(lock: Path) -> dict[str, str]:
    """{canonical name: the lines of its entry} of a lock file."""
    found: dict[str, str] = {}
    current = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match:
            current = canonicalize_name(match.group(1))
            found[current] = line
        elif current and line.startswith(" "):
            found[current] += "\n" + line
    return found


@pytest.mark.parametrize(("lock", "extras"), [(RUNTIME_LOCK, [None]), (DEV_LOCK, [None, "dev"])])
def test_every_declared_dependency_is_pinned_with_hashes(lock: Path, extras: list[str | None]) -> None:
    pinned = audit.pins(lock)
    entries = blocks(lock)
    for extra in extras:
        for requirement in declared(extra):
            name = canonicalize_name(requirement.name)
            assert name in pinned, f"{name} is not in {lock.name}: run scripts/lock"
            assert requirement.specifier.contains(pinned[name], prereleases=True), (name, pinned[name])
    for name, entry in entries.items():
        assert "--hash=sha256:" in entry, f"{name} has no hash in {lock.name}"


def test_the_installer_lock_pins_uv_alone_with_its_hashes() -> None:
    """scripts/install takes uv from it (hash-checked, no dependencies resolved): uv and nothing else."""
    assert list(audit.pins(INSTALLER_LOCK)) == ["uv"]
    assert blocks(INSTALLER_LOCK)["uv"].count("--hash=sha256:") >= 2
    assert INSTALLER_LOCK in audit.LOCKS


def test_the_image_and_ci_get_the_same_release_of_each_runtime_package() -> None:
    runtime, dev = audit.pins(RUNTIME_LOCK), audit.pins(DEV_LOCK)
    assert {name: dev.get(name) for name in runtime} == runtime


def test_ci_and_the_image_install_from_the_locks_checking_hashes() -> None:
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    assert "scripts/install .venv requirements-dev.lock" in script and "scripts/audit.py" in script
    assert 'scripts/install "$VENV" requirements.lock' in (ROOT / "scripts" / "demo").read_text(encoding="utf-8")
    # The whole locked closure, hashes checked, nothing resolved; then pip check on the result;
    # the installer itself (uv) hash-checked too, and pip doing the same where uv cannot be had.
    install = (ROOT / "scripts" / "install").read_text(encoding="utf-8")
    assert "--require-hashes --no-deps --only-binary :all: --target" in install
    assert "-r requirements-installer.lock" in install
    assert '$install --require-hashes --no-deps -r "$lock"' in install
    assert "$install --no-deps -e ." in install and "pip check" in install
    assert 'with_pip() { pip install -q "$@"; }' in install and "install=with_pip" in install
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY requirements.lock" in dockerfile
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert not any(p.strip() in ("requirements.lock", "*.lock") for p in ignored)


def test_this_environment_holds_exactly_the_locked_releases() -> None:
    """What scripts/test installed is the lock, not whatever was newest that day."""
    drift = {}
    for name, version in audit.pins(DEV_LOCK).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            drift[name] = (version, None)
            continue
        if installed != version:
            drift[name] = (version, installed)
    assert not drift, f"installed releases differ from requirements-dev.lock (locked, installed): {drift}"


def test_a_pin_below_a_known_fix_is_reported(tmp_path: Path) -> None:
    lock = tmp_path / "old.lock"
    lock.write_text("h11==0.14.0 \\\n    --hash=sha256:00\nJinja2==3.1.6 \\\n    --hash=sha256:00\n")
    findings = audit.below_floors(audit.pins(lock))
    assert [(f.package, f.advisory, f.fixed) for f in findings] == [("h11", "CVE-2025-43859", "0.16.0")]
    assert "0.14.0" in str(findings[0])


def test_the_locks_are_above_every_known_fix() -> None:
    for lock in (RUNTIME_LOCK, DEV_LOCK, INSTALLER_LOCK):
        assert audit.below_floors(audit.pins(lock)) == []


class _Answer(BaseHTTPRequestHandler):
    status = 404

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def database_answering() -> Iterator[Any]:
    servers = []

    def start(status: int) -> str:
        handler = type("Handler", (_Answer,), {"status": status})
        server = HTTPServer(("127.0.0.1", 0), handler)
        Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_audit_names_why_no_vulnerability_database_answers(database_answering: Any) -> None:
    pypi = database_answering(404) + "/pypi"  # a mirror without per-release JSON, as here
    osv = f"http://127.0.0.1:{free_port()}/v1/query"  # nothing listens
    service, why = audit.database("h11", "0.16.0", pypi=pypi, osv=osv)
    assert service is None
    assert why[0] == f"{pypi}/h11/0.16.0/json: HTTP 404"
    assert why[1].startswith(f"{osv}: unreachable")


def test_the_audit_uses_the_first_database_that_answers(database_answering: Any) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    assert audit.database("h11", "0.16.0", pypi=database_answering(200), osv=closed)[0] == "pypi"
    assert audit.database("h11", "0.16.0", pypi=closed, osv=database_answering(200))[0] == "osv"
