"""Run the bridge end to end on this machine: stand-ins for Twenty and Whop, SQLite, one URL.

    scripts/demo                 start everything; open the printed URL, log in, click Connect Whop
    scripts/demo webhook         cancel a membership at the stand-in Whop and send its signed webhook
    scripts/demo --check         the same, driven headless (provision, sync, a signed webhook), then exit

The stand-ins are the fakes under fakes/ (the ones the tests use): a Twenty that speaks the 2.x API and shows
its records at /, and a Whop with a seeded company, an OAuth consent page and signed webhooks.
Everything listens on 127.0.0.1. The demo keeps its state in .demo/ (DEMO_STATE names another
folder) and starts a fresh bridge database there each time. `--check` uses a new temporary
folder and free ports, so it never touches a demo that is running. Ctrl-C or SIGTERM stops the
demo and everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
STATE = Path(os.environ.get("DEMO_STATE") or ROOT / ".demo")
COMPANY = "biz_demo"
TWENTY_KEY = "demo-twenty-key"
WHOP_KEY = "demo-whop-key"
CLIENT_ID = "app_demo_bridge"
# Where the demo listens unless a port is taken (then the next free one, and it says so).
PORTS = {"twenty": 3000, "whop": 8100, "bridge": 8000}
WHOP_HEADERS = {"Authorization": f"Bearer {WHOP_KEY}", "Api-Version-Date": "2026-10-15-1"}


def say(text: str) -> None:
    print(text, flush=True)


class Stop(Exception):
    """Raised by the SIGTERM/SIGHUP handler, so the `finally` that stops the children runs."""


# Ports and processes -----------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def any_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def choose_ports(any_ports: bool) -> dict[str, int]:
    if any_ports:
        return {name: any_free_port() for name in PORTS}
    chosen: dict[str, int] = {}
    for name, wanted in PORTS.items():
        port = wanted
        while not port_free(port) or port in chosen.values():
            port += 1
        if port != wanted:
            say(f"  port {wanted} is in use, so the stand-in {name} takes {port}")
        chosen[name] = port
    return chosen


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the demo dies, even by SIGKILL, so nothing is left behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start(name: str, args: list[str], env: dict[str, str], state: Path) -> subprocess.Popen[bytes]:
    with (state / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [PYTHON, *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def wait_http(url: str, name: str, proc: subprocess.Popen[bytes], state: Path, seconds: float = 60) -> None:
    started = time.monotonic()
    with httpx.Client(timeout=1) as http:  # one client: each new one costs a TLS context's CPU
        while time.monotonic() - started < seconds:
            if proc.poll() is not None:
                raise SystemExit(f"the {name} exited while starting (code {proc.returncode}); see {state / name}.log")
            try:
                http.get(url)
                say(f"  {name} ready ({time.monotonic() - started:.1f} s)")
                return
            except httpx.HTTPError:
                time.sleep(0.2)
    raise SystemExit(f"the {name} did not answer at {url} within {seconds:.0f} s; see {state / name}.log")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# The running demo's state ---------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    pid: int
    bridge_url: str
    whop_url: str
    twenty_url: str
    webhook_secret: str
    database: str


def running(state: Path) -> Running | None:
    """The demo whose state is in `state`, if its process is alive and its bridge answers."""
    try:
        saved: dict[str, Any] = json.loads((state / "state.json").read_text())
        found = Running(**{k: saved[k] for k in Running.__dataclass_fields__})
        os.kill(found.pid, 0)
        httpx.get(found.bridge_url + "/healthz", timeout=2).raise_for_status()
    except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError):
        return None
    return found


def write_state(state: Path, values: dict[str, Any]) -> None:
    path = state / "state.json"
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)  # it holds the demo's webhook secret


# Commands -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["run", "webhook"], default="run")
    parser.add_argument("--check", action="store_true", help="drive the demo headless in a temporary folder, exit")
    parser.add_argument("--members", type=int, default=40, help="Whop members in the stand-in company")
    parser.add_argument("--any-ports", action="store_true", help="take any free ports instead of 3000/8100/8000")
    args = parser.parse_args()
    if args.command == "webhook":
        return webhook_command()
    if args.check:
        return check_command(args.members)
    return run_command(args.members, args.any_ports)


def run_command(members: int, any_ports: bool) -> int:
    found = running(STATE)
    if found:
        say(f"A demo is already running (pid {found.pid}): open {found.bridge_url}/")
        say(f"Stop it with Ctrl-C in its terminal, or `kill {found.pid}`, before starting another.")
        return 1
    say(f"Starting the demo. Its state lives in {display(STATE)}/; its bridge database starts empty each time.")
    STATE.mkdir(parents=True, exist_ok=True)
    for old in STATE.glob("bridge.db*"):
        old.unlink()
    (STATE / "state.json").unlink(missing_ok=True)
    return serve_demo(STATE, choose_ports(any_ports), members, check=False)


def check_command(members: int) -> int:
    found = running(STATE)
    if found:
        say(f"A demo is running at {found.bridge_url}/ (pid {found.pid}); the check leaves it alone.")
    state = Path(tempfile.mkdtemp(prefix="whop-twenty-bridge-check-"))
    say(f"Checking the demo headless in {state} on free ports.")
    code = 1
    try:
        code = serve_demo(state, choose_ports(True), members, check=True)
    finally:
        if code == 0:
            shutil.rmtree(state, ignore_errors=True)
        else:
            say(f"the check's logs are in {state}")
    return code


def display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def serve_demo(state: Path, ports: dict[str, int], members: int, *, check: bool) -> int:
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    client_secret = secrets.token_urlsafe(24)
    webhook_secret = "ws_demo_" + secrets.token_hex(16)
    password = "demo-" + secrets.token_hex(6)
    database = state / "bridge.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bridge_env = {
        **env,
        "TWENTY_URL": urls["twenty"],
        "TWENTY_API_KEY": TWENTY_KEY,
        "WHOP_API_URL": urls["whop"],
        "WHOP_CLIENT_ID": CLIENT_ID,
        "WHOP_CLIENT_SECRET": client_secret,
        "WHOP_WEBHOOK_SECRET": webhook_secret,
        "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
        "BRIDGE_ADMIN_PASSWORD": password,
        "BRIDGE_PUBLIC_URL": urls["bridge"],
        "DATABASE_URL": f"sqlite:///{database}",
    }
    if check:  # headless: the company API key instead of clicking through OAuth
        bridge_env |= {"WHOP_API_KEY": WHOP_KEY, "WHOP_COMPANY_ID": COMPANY}

    def stop_on_signal(signum: int, frame: FrameType | None) -> None:
        raise Stop

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop_on_signal)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        say(f"  starting the stand-in Twenty (2.x API) on {urls['twenty']}")
        twenty_args = ["--port", str(ports["twenty"]), "--api-key", TWENTY_KEY, "--dialect", "2.x"]
        procs.append(twenty := start("twenty", ["-m", "fakes.twenty", *twenty_args], env, state))
        say(f"  starting the stand-in Whop ({members} members) on {urls['whop']}")
        whop_args = [
            *("--port", str(ports["whop"]), "--members", str(members), "--company-id", COMPANY),
            *("--title", "Pickaxe Trading (demo)", "--api-key", WHOP_KEY, "--client-id", CLIENT_ID),
            # `=`: a secret may start with "-", which argparse would take for an option.
            f"--client-secret={client_secret}",
            *("--redirect-uri", f"{urls['bridge']}/oauth/callback"),
        ]
        procs.append(whop := start("whop", ["-m", "fakes.whop", *whop_args], env, state))
        wait_http(urls["twenty"] + "/healthz", "twenty", twenty, state)
        wait_http(urls["whop"] + "/_fake", "whop", whop, state)
        say(f"  starting the bridge on {urls['bridge']} (SQLite at {display(database)})")
        bridge_args = ["-m", "bridge.cli", "serve", "--port", str(ports["bridge"])]
        procs.append(bridge := start("bridge", bridge_args, bridge_env, state))
        wait_http(urls["bridge"] + "/healthz", "bridge", bridge, state)
        write_state(
            state,
            {
                "pid": os.getpid(),
                "children": {"twenty": twenty.pid, "whop": whop.pid, "bridge": bridge.pid},
                "bridge_url": urls["bridge"],
                "whop_url": urls["whop"],
                "twenty_url": urls["twenty"],
                "webhook_secret": webhook_secret,
                "database": str(database),
            },
        )
        if check:
            return drive_check(bridge_env, urls, webhook_secret)
        say(
            f"""
The demo is running. Logs: {display(state)}/twenty.log, whop.log, bridge.log

  1. Open {urls["bridge"]}/ and log in with the password  {password}
  2. Click "Connect Whop", then "Approve" on the stand-in Whop.
  3. Watch the first sync finish, then see the members in the stand-in Twenty: {urls["twenty"]}/
  4. In another terminal, cancel a membership at Whop and send its signed webhook:  scripts/demo webhook

Press Ctrl-C to stop it (the stand-ins and the bridge stop too)."""
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        name, code = next(
            (n, p.returncode) for n, p in zip(("twenty", "whop", "bridge"), procs, strict=True) if p.poll() is not None
        )
        say(f"the {name} exited (code {code}); see {display(state)}/{name}.log. Stopping the demo.")
        return 1
    except (KeyboardInterrupt, Stop):
        return 130 if check else 0  # an interrupted check has not passed
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut this short
            signal.signal(sig, signal.SIG_IGN)
        stop(procs)
        (state / "state.json").unlink(missing_ok=True)
        if not check:
            say("The demo stopped.")


def drive_check(env: dict[str, str], urls: dict[str, str], webhook_secret: str) -> int:
    """Provision, sync and deliver one signed webhook, checking each step; print what happened."""

    def cli(*args: str, busy_for: float = 0.0) -> str:
        """Run the command; while the company's sync is busy (the bridge's first scheduled
        reconciliation starts 30-90 s after it did, within this check on a slow machine), try
        again for up to `busy_for` seconds."""
        deadline = time.monotonic() + busy_for
        while True:
            proc = subprocess.run(
                [PYTHON, "-m", "bridge.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
            )
            if proc.returncode == 0:
                return proc.stdout
            if "is already running" not in proc.stderr or time.monotonic() > deadline:
                raise SystemExit(f"`whop-twenty-bridge {' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")
            say("  the bridge's scheduled reconciliation is running; the full sync follows it")
            time.sleep(2)

    say("  provisioning: " + cli("provision").splitlines()[-1])
    say("  full sync: " + cli("sync", "--full", busy_for=300).splitlines()[-1])
    say("  " + send_webhook(urls["bridge"], urls["whop"], webhook_secret).line)
    deadline = time.time() + 30
    listing = ""
    while time.time() < deadline:
        listing = cli("webhooks", "list")
        if "applied" in listing:
            say("webhook applied to Twenty")
            say(json.dumps({"bridge": urls["bridge"], "ok": True}))
            return 0
        time.sleep(0.5)
    raise SystemExit("the webhook was not applied within 30 s:\n" + listing)


# The webhook step -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    member: str
    product: str
    membership: str
    status_code: int

    @property
    def line(self) -> str:
        return (
            f"Canceled {self.member}'s {self.product} membership ({self.membership}) at the stand-in Whop and "
            f"sent the signed membership.deactivated webhook; the bridge answered HTTP {self.status_code}."
        )


def send_webhook(bridge_url: str, whop_url: str, webhook_secret: str) -> Sent:
    """Cancel one active membership at the stand-in Whop and deliver `membership.deactivated`."""
    with httpx.Client(base_url=whop_url, headers=WHOP_HEADERS, timeout=30) as whop:
        listing = whop.get(
            "/api/v1/memberships", params={"account_id": COMPANY, "statuses": "active", "first": 1}
        ).raise_for_status()
        if not listing.json()["data"]:
            raise SystemExit("every membership at the stand-in Whop is canceled already; restart the demo")
        membership = listing.json()["data"][0]
        member = whop.get(f"/api/v1/members/{membership['member_id']}").raise_for_status().json()
        user = member.get("user") or {}
        name = user.get("name") or member.get("display_name") or user.get("username") or membership["member_id"]
        whop.post(f"/_fake/memberships/{membership['id']}", json={"status": "canceled"}).raise_for_status()
        answer = whop.post(
            "/_fake/deliver",
            json={
                "url": f"{bridge_url}/webhooks/whop",
                "type": "membership.deactivated",
                "object_id": membership["id"],
                "secret": webhook_secret,
                "company_id": COMPANY,
            },
        ).raise_for_status()
    product = (membership.get("product") or {}).get("title") or "Whop"
    return Sent(str(name), str(product), str(membership["id"]), int(answer.json()["status_code"]))


def whop_connected(database: str) -> bool:
    """Whether the running demo's bridge has a connected Whop company (read-only, from its file)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
            row = db.execute("SELECT count(*) FROM connections WHERE status = 'connected'").fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0])


def webhook_command() -> int:
    found = running(STATE)
    if found is None:
        print(
            "The demo is not running: start it with scripts/demo, then run scripts/demo webhook in another terminal.",
            file=sys.stderr,
        )
        return 1
    try:
        sent = send_webhook(found.bridge_url, found.whop_url, found.webhook_secret)
    except httpx.HTTPError as exc:
        print(f"The stand-in Whop did not answer as expected ({exc}); is the demo still running?", file=sys.stderr)
        return 1
    say(sent.line)
    if not whop_connected(found.database):
        say("Whop is not connected yet, so the bridge records the delivery and ignores it: open")
        say(f"{found.bridge_url}/, click Connect Whop, then send another with scripts/demo webhook.")
        return 0
    say(f"  The delivery, applied within a second or two:  {found.bridge_url}/#deliveries")
    opportunities = f"{found.twenty_url}/ui/opportunities"
    say(f"  {sent.member}'s opportunity in Twenty (Whop Membership Status: CANCELED):  {opportunities}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
