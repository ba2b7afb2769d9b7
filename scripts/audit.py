"""Known-vulnerability audit of the locked dependencies (requirements.lock, requirements-dev.lock
and requirements-installer.lock).

    .venv/bin/python scripts/audit.py [--strict]

1. pip-audit checks every pinned release against a vulnerability database: PyPI's (per-release
   JSON) or OSV's, whichever answers. Where neither does, it says exactly why and goes on.
2. Always, with no network: every pin is checked against scripts/advisories.toml, a hand-kept
   list of advisories with the release that fixes each.

Exit 1 when a pin is vulnerable or below a floor. When no database answers, exit 0 after saying
so, or 2 with --strict (for a machine that should reach one).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCKS = [ROOT / "requirements.lock", ROOT / "requirements-dev.lock", ROOT / "requirements-installer.lock"]
ADVISORIES = ROOT / "scripts" / "advisories.toml"
PYPI = "https://pypi.org/pypi"
OSV = "https://api.osv.dev/v1/query"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclass(frozen=True)
class Finding:
    package: str
    pinned: str
    fixed: str
    advisory: str
    what: str

    def __str__(self) -> str:
        return f"{self.package}=={self.pinned}: {self.advisory} ({self.what}); fixed in {self.fixed}"


def pins(lock: Path) -> dict[str, str]:
    """{canonical name: version} of every `name==version` line of a pip-compile lock file."""
    found = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def below_floors(locked: dict[str, str], advisories: Path = ADVISORIES) -> list[Finding]:
    """Pins older than the release that fixes an advisory in `advisories`."""
    findings = []
    for entry in tomllib.loads(advisories.read_text(encoding="utf-8"))["advisory"]:
        name = canonicalize_name(entry["package"])
        pinned = locked.get(name)
        if pinned is not None and Version(pinned) < Version(entry["fixed"]):
            findings.append(Finding(name, pinned, entry["fixed"], entry["id"], entry["what"]))
    return findings


def _answers(url: str, data: bytes | None = None) -> str | None:
    """None if `url` answers 200, else why not."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (checked above)
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable ({reason})"


def database(name: str, version: str, pypi: str = PYPI, osv: str = OSV) -> tuple[str | None, list[str]]:
    """The pip-audit service that answers for one locked release ("pypi" or "osv"), or None and
    why each failed."""
    why = []
    problem = _answers(f"{pypi}/{name}/{version}/json")
    if problem is None:
        return "pypi", why
    why.append(f"{pypi}/{name}/{version}/json: {problem}")
    query = json.dumps({"package": {"name": name, "ecosystem": "PyPI"}, "version": version}).encode()
    problem = _answers(osv, query)
    if problem is None:
        return "osv", why
    why.append(f"{osv}: {problem}")
    return None, why


def pip_audit(service: str) -> bool:
    """pip-audit over every lock file; True if it found nothing."""
    clean = True
    for lock in LOCKS:
        command = [sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--require-hashes"]
        command += ["--disable-pip", "--vulnerability-service", service, "--progress-spinner", "off"]
        print(f"== pip-audit ({service}) {lock.name}", flush=True)
        clean &= subprocess.run(command, check=False).returncode == 0
    return clean


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strict", action="store_true", help="fail when no vulnerability database answers")
    args = parser.parse_args()
    locked: dict[str, str] = {}
    for lock in LOCKS:
        locked.update(pins(lock))
    status = 0
    name, version = sorted(locked.items())[0]
    service, why = database(name, version)
    if service is None:
        print("pip-audit not run: no vulnerability database answers from here")
        for line in why:
            print(f"  {line}")
        status = 2 if args.strict else 0
    elif not pip_audit(service):
        status = 1
    findings = below_floors(locked)
    for finding in findings:
        print(f"known advisory: {finding}")
    print(f"{len(locked)} locked releases checked against {ADVISORIES.name}: {len(findings)} below a fixed release")
    return 1 if findings else status


if __name__ == "__main__":
    sys.exit(main())
