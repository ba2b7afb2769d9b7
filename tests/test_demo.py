"""`scripts/demo` as a person runs it: real processes on loopback. It starts with a word from the
first second, refuses to start twice, lets `--check` run beside it without touching its folder,
stops with everything it started, and `scripts/demo webhook` says what it did and where to look."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scripts" / "demo.py"

pytestmark = pytest.mark.slow


class Output:
    """A process's stdout, line by line as it comes, with the time each line arrived."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for(self, needle: str, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while needle not in self.text:
            if self.proc.poll() is not None and needle not in self.text:
                self._thread.join(5)
                if needle in self.text:
                    return
                raise AssertionError(f"exited with {self.proc.returncode} before {needle!r}:\n{self.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} within {seconds} s:\n{self.text}")
            time.sleep(0.1)


def as_a_terminal_starts_it() -> None:
    """In the child before it runs: Ctrl-C (SIGINT) does what it does for a command typed in a
    terminal, even when this suite was started where SIGINT is ignored (a shell's background job
    passes SIG_IGN on, and a Python started so never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def demo_env(state: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "DEMO_STATE": str(state), **extra}


def run_demo(state: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        cwd=ROOT,
        env=demo_env(state),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for a parent that is not the demo."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def refuses(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


class Demo:
    def __init__(self, state: Path) -> None:
        self.state = state
        proc = subprocess.Popen(
            [sys.executable, str(DEMO), "--any-ports", "--members", "8"],
            cwd=ROOT,
            env=demo_env(state),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=as_a_terminal_starts_it,
        )
        self.proc = proc
        self.output = Output(proc)
        self.output.wait_for("Press Ctrl-C to stop it")
        self.saved: dict[str, Any] = json.loads((state / "state.json").read_text())
        found = re.search(r"log in with the password\s+(\S+)", self.output.text)
        assert found
        self.password = found.group(1)

    @property
    def bridge(self) -> str:
        return str(self.saved["bridge_url"])

    @property
    def urls(self) -> list[str]:
        return [self.saved[k] for k in ("bridge_url", "whop_url", "twenty_url")]

    @property
    def pids(self) -> list[int]:
        return [int(p) for p in self.saved["children"].values()]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        for pid in self.pids:  # only if the demo failed at its own job, which the test then reports
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path / "state")
    try:
        yield running
    finally:
        running.close()


def test_the_demo_says_what_it_is_doing_from_the_first_second(demo: Demo) -> None:
    """Its first words come before anything it starts, each step said as it begins (judged by
    their order, not by a clock a busy machine slows)."""
    said = [line for _, line in demo.output.lines]
    first = said[0]
    assert first.startswith("Starting the demo. Its state lives in")
    assert "its bridge database starts empty each time" in first
    steps = ("starting the stand-in Twenty", "starting the stand-in Whop", "starting the bridge", "bridge ready")
    at = [next((n for n, line in enumerate(said) if step in line), None) for step in steps]
    assert None not in at and at == sorted(at) and at[0] > 0, said


def test_a_check_run_beside_the_demo_leaves_its_folder_and_processes_alone(demo: Demo) -> None:
    files = {p.name: p for p in demo.state.iterdir()}
    before = {name: (p.stat().st_ino, p.stat().st_size) for name, p in files.items()}
    state_json = (demo.state / "state.json").read_text()

    check = run_demo(demo.state, "--check", "--members", "5")

    assert check.returncode == 0, check.stdout + check.stderr
    assert f"A demo is running at {demo.bridge}/ (pid {demo.proc.pid}); the check leaves it alone." in check.stdout
    assert "webhook applied to Twenty" in check.stdout
    folder = re.search(r"Checking the demo headless in (\S+) on free ports", check.stdout)
    assert folder and not Path(folder.group(1)).exists()  # its own folder, removed once it passed
    assert (demo.state / "state.json").read_text() == state_json
    for name, (inode, size) in before.items():  # same files, none replaced or truncated
        stat = (demo.state / name).stat()
        assert stat.st_ino == inode and stat.st_size >= size, name
    assert demo.proc.poll() is None
    for url in demo.urls:
        assert not refuses(url)
    assert demo.bridge not in check.stdout.split("the check leaves it alone.", 1)[1]  # other ports


def test_a_second_demo_on_the_same_folder_is_refused_and_names_the_first(demo: Demo) -> None:
    again = run_demo(demo.state, "--any-ports")
    assert again.returncode == 1
    assert f"A demo is already running (pid {demo.proc.pid}): open {demo.bridge}/" in again.stdout
    assert f"`kill {demo.proc.pid}`" in again.stdout
    assert json.loads((demo.state / "state.json").read_text()) == demo.saved
    assert httpx.get(demo.bridge + "/healthz").status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_stopping_the_demo_stops_everything_it_started(demo: Demo, sig: signal.Signals) -> None:
    demo.proc.send_signal(sig)
    demo.proc.wait(120)  # only against a hang: it gives each of its three processes 10 s to stop
    deadline = time.monotonic() + 20
    while not all(gone(pid) for pid in demo.pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(gone(pid) for pid in demo.pids), [p for p in demo.pids if not gone(p)]
    assert all(refuses(url) for url in demo.urls)
    if sig != signal.SIGKILL:
        assert demo.proc.returncode == 0
        demo.output.wait_for("The demo stopped.")
        assert not (demo.state / "state.json").exists()
    # Even after SIGKILL left its state file behind, a dead demo is not taken for a running one.
    webhook = run_demo(demo.state, "webhook")
    assert webhook.returncode == 1 and "The demo is not running" in webhook.stderr


def test_webhook_without_a_running_demo_says_so_in_one_line(tmp_path: Path) -> None:
    proc = run_demo(tmp_path / "no-demo-here", "webhook")
    assert proc.returncode == 1
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "The demo is not running: start it with scripts/demo, then run scripts/demo webhook in another terminal."
    ]


def connect_whop(demo: Demo) -> None:
    """Log in, click Connect Whop, approve at the stand-in Whop, and wait for the first sync."""
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        login = browser.get(demo.bridge + "/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
        assert csrf
        browser.post(demo.bridge + "/login", data={"password": demo.password, "csrf_token": csrf.group(1)})
        page = browser.get(demo.bridge + "/").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        authorize = browser.post(demo.bridge + "/connect", data={"csrf_token": csrf.group(1)}).headers["location"]
        request_id = re.search(r'name="request_id" value="([^"]+)"', browser.get(authorize).text)
        assert request_id
        decision = browser.post(
            demo.saved["whop_url"] + "/oauth/authorize/decision",
            data={"request_id": request_id.group(1), "decision": "approve"},
        )
        assert browser.get(decision.headers["location"]).status_code == 303
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = browser.get(demo.bridge + "/api/status").json()["job"]
            if job and job["finished"]:
                assert job["status"] == "succeeded", job
                return
            time.sleep(0.5)
    raise AssertionError("the first sync did not finish")


def test_webhook_names_the_member_the_change_and_where_to_look(demo: Demo) -> None:
    connect_whop(demo)

    proc = run_demo(demo.state, "webhook")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    sent = re.match(
        r"Canceled (.+)'s (.+) membership \((mem_\w+)\) at the stand-in Whop and sent the signed "
        r"membership\.deactivated webhook; the bridge answered HTTP 200\.",
        proc.stdout,
    )
    assert sent, proc.stdout
    member, membership = sent.group(1), sent.group(3)
    headers = {"Authorization": "Bearer demo-whop-key", "Api-Version-Date": "2026-10-15-1"}
    at_whop = httpx.get(f"{demo.saved['whop_url']}/api/v1/memberships/{membership}", headers=headers).json()
    assert at_whop["status"] == "canceled"
    whop_member = httpx.get(f"{demo.saved['whop_url']}/api/v1/members/{at_whop['member_id']}", headers=headers).json()
    assert member == whop_member["user"]["name"]
    opportunities = f"{demo.saved['twenty_url']}/ui/opportunities"
    assert f"{demo.bridge}/#deliveries" in proc.stdout and opportunities in proc.stdout
    # What the printed page shows: the change, in Twenty.
    deadline = time.monotonic() + 30
    with httpx.Client() as http:
        while "CANCELED" not in http.get(opportunities).text:
            assert time.monotonic() < deadline, "the opportunity was not canceled in Twenty"
            time.sleep(0.5)


def test_the_wrapper_installs_only_what_the_demo_runs(tmp_path: Path) -> None:
    venv, go_on = tmp_path / "venv", tmp_path / "go-on"
    # The Python the wrapper makes its environment with holds `-m venv` until the test has read
    # the wrapper's first line: the line is judged to come before the slow part, not by a clock.
    python = tmp_path / "python3"
    real = shutil.which("python3") or sys.executable
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "-m venv" ]; then while [ ! -e "{go_on}" ]; do sleep 0.05; done; fi\n'
        f'exec "{real}" "$@"\n'
    )
    python.chmod(0o755)
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "demo"), "--check", "--members", "5"],
        cwd=ROOT,
        env=demo_env(tmp_path / "state", DEMO_VENV=str(venv), PYTHON=str(python)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    output = Output(proc)
    try:
        output.wait_for("demo: creating a Python environment")
        assert not venv.exists(), "the environment was being made before the wrapper said so"
        go_on.touch()
        output.wait_for("webhook applied to Twenty", seconds=400)
        assert proc.wait(60) == 0, output.text
    finally:
        if proc.poll() is None:
            proc.kill()
    _, first = output.lines[0]
    assert first == f"demo: creating a Python environment in {venv}"
    assert "demo: installing the bridge and its dependencies" in output.text
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "whop-twenty-bridge" in installed
    assert not installed & {"pytest", "mypy", "ruff", "playwright", "hypothesis", "respx"}


def test_an_interrupted_check_fails_and_keeps_its_logs(tmp_path: Path) -> None:
    # The check's `provision` never ends (held at its start, until it is killed), so the Ctrl-C
    # below lands while the check is running however slow the machine: not after it passed.
    held = tmp_path / "held"
    held.mkdir()
    (held / "sitecustomize.py").write_text(
        "import os, pathlib, time\n"
        "if b'provision' in pathlib.Path('/proc/self/cmdline').read_bytes().split(b'\\0'):\n"
        "    parent = os.getppid()\n"
        "    while os.getppid() == parent:  # and never outlives the check\n"
        "        time.sleep(0.5)\n"
        "    os._exit(1)\n"
    )
    path = os.pathsep.join(p for p in (str(held), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(
        [sys.executable, str(DEMO), "--check", "--members", "5"],
        cwd=ROOT,
        env=demo_env(tmp_path / "state", PYTHONPATH=path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=as_a_terminal_starts_it,
    )
    output = Output(proc)
    try:
        output.wait_for("bridge ready")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130  # the wait only against a hang: it gives each process 10 s to stop
    finally:
        if proc.poll() is None:
            proc.terminate()  # it stops what it started
            proc.wait(60)
    output.wait_for("the check's logs are in")
    folder = re.search(r"the check's logs are in (\S+)", output.text)
    assert folder and (Path(folder.group(1)) / "bridge.log").exists()
    shutil.rmtree(folder.group(1))
