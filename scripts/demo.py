"""Run the bridge end to end on this machine: a local Twenty and Whop stand-in, SQLite, one URL.

    scripts/demo                 # start everything; open the printed URL, log in, click Connect Whop
    scripts/demo --check         # the same, driven automatically (provision, sync, a signed webhook), then exit

The stand-ins are the test fakes under tests/fakes (a Twenty that speaks the 2.x API and shows
its records at /, a Whop with a seeded company, OAuth consent page and signed webhooks).
Everything stays on 127.0.0.1; state lives in .demo/.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
COMPANY = "biz_demo"
TWENTY_KEY = "demo-twenty-key"
WHOP_KEY = "demo-whop-key"
CLIENT_ID = "app_demo_bridge"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def pick(port: int) -> int:
    while not port_free(port):
        port += 1
    return port


def wait_http(url: str, what: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early (code {proc.returncode}); see .demo/{what}.log")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer at {url}")


def start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    log = (log_dir / f"{name}.log").open("wb")
    return subprocess.Popen([PYTHON, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "command",
        nargs="?",
        choices=["run", "webhook"],
        default="run",
        help="run the demo (default), or send a signed webhook to the running one",
    )
    parser.add_argument("--check", action="store_true", help="drive the demo automatically and exit")
    parser.add_argument("--members", type=int, default=40)
    args = parser.parse_args()
    if args.command == "webhook":
        saved = json.loads((ROOT / ".demo" / "state.json").read_text())
        return send_webhook(saved["bridge_url"], saved["whop_url"], saved["webhook_secret"])

    state = ROOT / ".demo"
    state.mkdir(exist_ok=True)
    for old in state.glob("bridge.db*"):
        old.unlink()
    twenty_port, whop_port = pick(3000), pick(8100)
    bridge_port = pick(8000)
    twenty_url, whop_url = f"http://127.0.0.1:{twenty_port}", f"http://127.0.0.1:{whop_port}"
    bridge_url = f"http://127.0.0.1:{bridge_port}"
    client_secret = secrets.token_urlsafe(24)
    webhook_secret = "ws_demo_" + secrets.token_hex(16)
    password = "demo-" + secrets.token_hex(4)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bridge_env = {
        **env,
        "TWENTY_URL": twenty_url,
        "TWENTY_API_KEY": TWENTY_KEY,
        "WHOP_API_URL": whop_url,
        "WHOP_CLIENT_ID": CLIENT_ID,
        "WHOP_CLIENT_SECRET": client_secret,
        "WHOP_WEBHOOK_SECRET": webhook_secret,
        "BRIDGE_SECRET_KEY": Fernet.generate_key().decode(),
        "BRIDGE_ADMIN_PASSWORD": password,
        "BRIDGE_PUBLIC_URL": bridge_url,
        "DATABASE_URL": f"sqlite:///{state / 'bridge.db'}",
    }
    if args.check:  # headless: the company API key instead of clicking through OAuth
        bridge_env |= {"WHOP_API_KEY": WHOP_KEY, "WHOP_COMPANY_ID": COMPANY}

    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            twenty := start(
                "twenty",
                ["-m", "tests.fakes.twenty", "--port", str(twenty_port), "--api-key", TWENTY_KEY, "--dialect", "2.x"],
                env,
                state,
            )
        )
        procs.append(
            whop := start(
                "whop",
                [
                    "-m",
                    "tests.fakes.whop",
                    "--port",
                    str(whop_port),
                    "--members",
                    str(args.members),
                    "--company-id",
                    COMPANY,
                    "--title",
                    "Pickaxe Trading (demo)",
                    "--api-key",
                    WHOP_KEY,
                    "--client-id",
                    CLIENT_ID,
                    "--client-secret",
                    client_secret,
                    "--redirect-uri",
                    f"{bridge_url}/oauth/callback",
                ],
                env,
                state,
            )
        )
        wait_http(twenty_url + "/healthz", "twenty", twenty)
        wait_http(whop_url + "/_fake", "whop", whop)
        procs.append(
            bridge := start("bridge", ["-m", "bridge.cli", "serve", "--port", str(bridge_port)], bridge_env, state)
        )
        wait_http(bridge_url + "/healthz", "bridge", bridge)
        (state / "state.json").write_text(
            json.dumps(
                {
                    "bridge_url": bridge_url,
                    "whop_url": whop_url,
                    "twenty_url": twenty_url,
                    "webhook_secret": webhook_secret,
                }
            )
        )
        if args.check:
            return check(bridge_env, bridge_url, whop_url, webhook_secret)
        print(
            f"""
whop-twenty-bridge demo is running (logs in .demo/).

  1. Open {bridge_url}/ and log in with the password  {password}
  2. Click "Connect Whop", then "Approve" on the stand-in Whop.
  3. Watch the first sync finish, then see the members in the stand-in Twenty: {twenty_url}/

  4. Cancel a membership at the stand-in Whop and send the signed webhook to the bridge
     (in another terminal):  scripts/demo webhook

Press Ctrl-C to stop.""",
            flush=True,
        )
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def check(env: dict[str, str], bridge_url: str, whop_url: str, webhook_secret: str) -> int:
    """Provision, sync and deliver one signed webhook, checking each step; print what happened."""

    def cli(*args: str) -> str:
        proc = subprocess.run(
            [PYTHON, "-m", "bridge.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            raise SystemExit(f"`whop-twenty-bridge {' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    print(cli("provision").splitlines()[-1])
    print(cli("sync", "--full").splitlines()[-1])
    send_webhook(bridge_url, whop_url, webhook_secret)
    deadline = time.time() + 30
    while time.time() < deadline:
        status = cli("webhooks", "list")
        if "applied" in status:
            print("webhook applied to Twenty")
            print(json.dumps({"bridge": bridge_url, "ok": True}))
            return 0
        time.sleep(0.5)
    raise SystemExit("the webhook was not applied within 30 s:\n" + status)


def send_webhook(bridge_url: str, whop_url: str, webhook_secret: str) -> int:
    """Cancel one active membership at the stand-in Whop and deliver `membership.deactivated`."""
    headers = {"Authorization": f"Bearer {WHOP_KEY}", "Api-Version-Date": "2026-10-15-1"}
    listing = httpx.get(
        f"{whop_url}/api/v1/memberships",
        headers=headers,
        timeout=10,
        params={"account_id": COMPANY, "statuses": "active", "first": 1},
    )
    listing.raise_for_status()
    membership = listing.json()["data"][0]["id"]
    httpx.post(f"{whop_url}/_fake/memberships/{membership}", json={"status": "canceled"}, timeout=10).raise_for_status()
    response = httpx.post(
        f"{whop_url}/_fake/deliver",
        timeout=30,
        json={
            "url": f"{bridge_url}/webhooks/whop",
            "type": "membership.deactivated",
            "object_id": membership,
            "secret": webhook_secret,
            "company_id": COMPANY,
        },
    )
    response.raise_for_status()
    print(
        f"canceled {membership} at Whop; the bridge answered the signed delivery with "
        f"HTTP {response.json()['status_code']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
