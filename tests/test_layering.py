"""The layers hold: the store imports nothing above it, every SQL statement lives in the store,
and no Whop or Twenty client reads the database."""

from __future__ import annotations

import ast
from pathlib import Path

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"
# What the store may use besides itself: values and settings, nothing that syncs or calls out.
STORE_MAY_IMPORT = ("bridge.store", "bridge.errors", "bridge.config", "bridge.crypto", "bridge.money", "bridge.facts")
STATEMENTS = {"select", "insert", "update", "delete", "text"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _modules(*parts: str) -> list[Path]:
    return sorted(p for p in BRIDGE.joinpath(*parts).rglob("*.py") if "migrations" not in p.parts)


def test_the_store_imports_nothing_above_it() -> None:
    offending = {
        str(path.relative_to(BRIDGE)): sorted(
            m for m in _imports(path) if m.startswith("bridge") and not m.startswith(STORE_MAY_IMPORT)
        )
        for path in _modules("store")
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_no_sql_statement_outside_the_store() -> None:
    outside = [p for p in _modules() if "store" not in p.relative_to(BRIDGE).parts]
    offending = []
    for path in outside:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in STATEMENTS
                and isinstance(node.value, ast.Name)
                and node.value.id in ("sa", "sqlalchemy")
            ):
                offending.append(f"{path.relative_to(BRIDGE)}:{node.lineno} sa.{node.attr}")
    assert offending == []


def test_no_whop_or_twenty_client_reads_the_database() -> None:
    offending = {
        str(path.relative_to(BRIDGE)): sorted(m for m in _imports(path) if m.startswith(("bridge.store", "sqlalchemy")))
        for path in [*_modules("whop"), *_modules("twenty")]
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_bridge_runs_without_the_fakes_and_the_fakes_without_the_tests() -> None:
    # The image ships bridge/ alone; the demo and bench/ run fakes/ from a checkout without tests/.
    fakes = BRIDGE.parent / "fakes"
    offending = {
        **{
            str(p.relative_to(BRIDGE.parent)): sorted(m for m in _imports(p) if m.startswith(("fakes", "tests")))
            for p in _modules()
        },
        **{
            str(p.relative_to(BRIDGE.parent)): sorted(m for m in _imports(p) if m.startswith("tests"))
            for p in sorted(fakes.rglob("*.py"))
        },
    }
    assert {k: v for k, v in offending.items() if v} == {}
