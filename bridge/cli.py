"""`whop-twenty-bridge` command line.

Each command is a thin shell: read settings, call one async entry point, print the result.
Errors the bridge raises on purpose end the command with one line (`error: …`) and a non-zero
exit code; secrets never appear in that line.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from bridge.config import Settings, load_settings
from bridge.errors import BridgeError, ConfigError
from bridge.runtime import Runtime
from bridge.store.db import store_unavailable
from bridge.store.runs import RunKind, SyncRun

if TYPE_CHECKING:
    from bridge.store.connections import Connection

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

EXIT_ERROR = 1
EXIT_CONFLICT = 2


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def run_with_runtime(body: Callable[[Runtime], Awaitable[T]], settings: Settings | None = None) -> T:
    """Build the process's runtime from the environment, run `body` with it, close it."""

    async def go() -> T:
        async with await Runtime.open(settings or settings_from_env()) as runtime:
            return await body(runtime)

    return run(go())


def fail(message: str) -> NoReturn:
    """End the command with `error: message` on one line (never wrapped, never read as markup)."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    sys.exit(EXIT_ERROR)


def friendly_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """Turn the bridge's own errors, and a database it cannot reach, into one clear line
    instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except ConfigError as exc:
            fail(f"configuration: {exc}")
        except BridgeError as exc:
            fail(str(exc))
        except DBAPIError as exc:
            # Down, refusing us, or a file that cannot be created: say which database, and what to check.
            fail(str(store_unavailable(settings_from_env().database_url, exc)))
        except KeyboardInterrupt:
            err_console.print("interrupted; run the same command again to resume")
            sys.exit(130)

    return wrapper


def settings_from_env() -> Settings:
    return load_settings()


async def _without_store(body: Callable[[Runtime], Awaitable[T]]) -> T:
    """`body` with a runtime whose store is never migrated (it is opened only if used)."""
    async with Runtime(settings_from_env()) as runtime:
        return await body(runtime)


@click.group()
@click.version_option(package_name="whop-twenty-bridge", prog_name="whop-twenty-bridge")
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
def main(verbose: bool) -> None:
    """Sync Whop members, memberships and products into TwentyCRM."""
    from bridge.logs import configure_logging

    configure_logging("DEBUG" if verbose else "WARNING")


@main.command()
def keygen() -> None:
    """Print a new key for BRIDGE_SECRET_KEY."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@friendly_errors
def provision(dry_run: bool) -> None:
    """Create the Whop data model in Twenty (idempotent; never deletes or retypes)."""
    from bridge.services import provision_workspace

    if dry_run:
        # A plan only reads Twenty: no database is opened, so none is created or migrated.
        result = run(_without_store(lambda runtime: provision_workspace(runtime, dry_run=True)))
    else:
        result = run_with_runtime(lambda runtime: provision_workspace(runtime))
    print_plan(result.plan, dry_run=dry_run)
    conflicts = result.plan.conflicts
    if dry_run:
        console.print(f"dry run: {len(result.plan.pending)} change(s) would be made, nothing was changed")
    else:
        console.print(f"applied {len(result.applied)} change(s) with {result.mutations} write(s) to Twenty")
    if conflicts:
        err_console.print(
            f"[red]error:[/red] {len(conflicts)} conflict(s) in the Twenty workspace; "
            "the items they block were not applied"
        )
        sys.exit(EXIT_CONFLICT)


@main.command()
@click.option("--full", is_flag=True, help="Walk everything at Whop and write what changed (the backfill).")
@click.option(
    "--deep", is_flag=True, help="Also check Twenty: repair bridge fields a person changed, report deletions."
)
@click.option("--dry-run", is_flag=True, help="Report what would be created / updated / left alone; write nothing.")
@click.option("--company", "company_id", help="One Whop company (biz_…); default: each connected company in turn.")
@friendly_errors
def sync(full: bool, deep: bool, dry_run: bool, company_id: str | None) -> None:
    """Sync Whop into Twenty now: a reconciliation by default (resumes a stopped run)."""
    from bridge.services import run_sync

    if full and deep:
        raise click.UsageError("--full and --deep are alternatives")
    kind: RunKind = "full" if full else "deep" if deep else "reconcile"

    async def go(runtime: Runtime) -> list[tuple[str | None, Any]]:
        targets: list[str | None] = [company_id] if company_id else [*await runtime.companies()]
        results = []
        for target in targets or [None]:  # None: the company WHOP_API_KEY belongs to
            with SyncProgress() as progress:
                result = await run_sync(
                    runtime, kind=kind, dry_run=dry_run, progress=progress.update, company_id=target
                )
            results.append((target, result))
        return results

    results = run_with_runtime(go)
    failed = False
    for target, result in results:
        if len(results) > 1:
            console.print(f"[bold]{target}[/bold]")
        if result.resumed_from:
            console.print(f"resumed run {result.run_id} from its checkpoint")
        print_sync_summary(result, dry_run=dry_run)
        failed = failed or any(p["kind"] == "failed" for p in result.problems)
    if failed:
        sys.exit(EXIT_CONFLICT)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--role",
    type=click.Choice(["all", "web", "worker"]),
    default="all",
    show_default=True,
    help="web: admin page and webhook intake; worker: apply the inbox and run the schedule; all: both.",
)
@friendly_errors
def serve(host: str, port: int, role: str) -> None:
    """Run the bridge with uvicorn: the admin web app and webhooks, the inbox worker, the scheduler.

    Several `web` and `worker` processes may share one PostgreSQL (or one SQLite file on one
    machine); a `worker` serves only /healthz, /readyz and /metrics on its port. Slow and
    oversized requests are cut off, and no client holds more than its share of connections
    (BRIDGE_MAX_CONNECTIONS, BRIDGE_MAX_CONNECTIONS_PER_CLIENT, BRIDGE_WEBHOOK_CONNECTIONS,
    BRIDGE_HEADER_TIMEOUT_SECONDS, BRIDGE_BODY_TIMEOUT_SECONDS, BRIDGE_MAX_BODY_BYTES; see
    bridge/server.py)."""
    import logging
    from urllib.parse import urlsplit

    from bridge import server
    from bridge.logs import configure_logging
    from bridge.web.app import AccessLogScrubber, create_app, create_worker_app

    settings = settings_from_env()
    if role != "worker":  # a worker serves no login page
        settings.require_admin_password()
    secrets = [
        s.get_secret_value()
        for s in (
            settings.twenty_api_key,
            settings.bridge_secret_key,
            settings.whop_api_key,
            settings.whop_client_secret,
            settings.whop_webhook_secret,
            settings.bridge_admin_password,
        )
        if s is not None
    ]
    configure_logging(settings.log_level, secrets=secrets)
    # uvicorn's access log prints query strings; the OAuth callback's carries a code and a state.
    logging.getLogger("uvicorn.access").addFilter(AccessLogScrubber())
    runtime = Runtime(settings)
    # Migrate before uvicorn starts: a database that is down then ends `serve` with one line
    # instead of a traceback from the app's startup.
    run(runtime.prepare())
    if role == "worker":
        app = create_worker_app(runtime)
        console.print(f"worker: applying the webhook inbox and running the schedule (health on {host}:{port})")
    else:
        app = create_app(runtime, run_workers=role == "all")
        console.print(f"admin page: {settings.bridge_public_url}/ (listening on {host}:{port}, role {role})")
    public = urlsplit(settings.bridge_public_url)
    if public.hostname in ("127.0.0.1", "localhost") and (public.port or 80) != port:
        # Whop sends the admin back to BRIDGE_PUBLIC_URL; a mismatch is the classic local-setup slip.
        err_console.print(f"warning: BRIDGE_PUBLIC_URL points at port {public.port or 80}, not {port}")
    # proxy_headers off: uvicorn would believe X-Forwarded-For from loopback; the app believes it
    # only from BRIDGE_TRUSTED_PROXIES (bridge.web.security.ForwardedFor).
    server.run(app, host=host, port=port, limits=server.Limits.from_settings(settings), proxy_headers=False)


OBJECT_LABELS = {"whopProduct": "Whop products", "person": "People", "opportunity": "Opportunities"}


class SyncProgress:
    """A live line per object with running counts (Whop lists carry no totals, so no ETA)."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> SyncProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def update(self, obj: str, counts: dict[str, dict[str, int]]) -> None:
        c = counts.get(obj, {})
        done = sum(c.get(k, 0) for k in ("created", "updated", "unchanged", "skipped", "failed"))
        text = (
            f"{OBJECT_LABELS.get(obj, obj):<14} {done:>6} done  "
            f"[green]+{c.get('created', 0)}[/] [cyan]~{c.get('updated', 0)}[/] "
            f"={c.get('unchanged', 0)} [yellow]skip {c.get('skipped', 0)}[/] [red]fail {c.get('failed', 0)}[/]"
        )
        if obj not in self._tasks:
            self._tasks[obj] = self._progress.add_task(text, total=None)
        self._progress.update(self._tasks[obj], description=text)


def print_sync_summary(result: Any, *, dry_run: bool) -> None:
    title = f"Sync run {result.run_id}: {result.status}" + (" (dry run: nothing written)" if dry_run else "")
    table = Table(title=title)
    table.add_column("object")
    words = ("would create", "would update") if dry_run else ("created", "updated")
    for heading in (*words, "unchanged", "skipped", "failed", "e-mail conflicts"):
        table.add_column(heading, justify="right")
    for obj in ("whopProduct", "person", "opportunity"):
        c = result.counts.get(obj, {})
        table.add_row(
            OBJECT_LABELS[obj],
            *(str(c.get(k, 0)) for k in ("created", "updated", "unchanged", "skipped", "failed", "conflicts")),
        )
    console.print(table)
    reads = result.twenty_calls - result.twenty_writes
    console.print(
        f"Twenty calls: {result.twenty_calls} ({result.twenty_writes} writes, {reads} reads); "
        f"Whop calls: {result.whop_calls}"
    )
    if result.problems:
        shown = result.problems[:20]
        problems = Table(title=f"{len(result.problems)} record(s) need attention", show_lines=False)
        for col in ("object", "key", "kind", "reason"):
            problems.add_column(col, overflow="fold")
        for p in shown:
            problems.add_row(p["object"], p["key"], p["kind"], p["reason"])
        console.print(problems)


STATUS_STYLE = {
    "create": "green",
    "add_options": "green",
    "present": "dim",
    "conflict": "red bold",
    "blocked": "yellow",
    "manual": "yellow",
    "unsupported": "dim",
}
STATUS_WORDS = {
    "create": "create",
    "add_options": "add options",
    "present": "already there",
    "conflict": "CONFLICT",
    "blocked": "blocked",
    "manual": "by hand",
    "unsupported": "not on this Twenty",
}


def print_plan(plan: Any, *, dry_run: bool) -> None:
    table = Table(title=f"Twenty data model (server speaks {plan.dialect})", show_lines=False)
    table.add_column("status")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("detail", overflow="fold")
    for item in plan.items:
        style = STATUS_STYLE.get(item.status, "")
        table.add_row(
            f"[{style}]{STATUS_WORDS.get(item.status, item.status)}[/]" if style else item.status,
            item.kind,
            item.name,
            item.detail,
        )
    console.print(table)


@main.command("connections")
@friendly_errors
def connections_cmd() -> None:
    """List the connected Whop companies, with each one's webhook and last sync."""
    from bridge import registration
    from bridge.store import connections
    from bridge.store import runs as run_store

    async def go(runtime: Runtime) -> list[tuple[Any, Any, Any]]:
        engine = runtime.store
        rows = []
        for c in await connections.list_connections(engine):
            if c.status == connections.STATUS_DISCONNECTED:
                continue
            runs = await run_store.recent_runs(engine, c.company_id, limit=1)
            rows.append((c, registration.WebhookState.of(c), runs[0] if runs else None))
        return rows

    rows = run_with_runtime(go)
    if not rows:
        console.print("no Whop company is connected (use `whop-twenty-bridge connect` or the admin page)")
        return
    table = Table(title="Whop companies")
    for col in ("company", "id", "by", "status", "webhook", "last sync"):
        table.add_column(col, overflow="fold")
    for c, hook, run in rows:
        last = f"{run.kind} {run.status} {run.started_at:%Y-%m-%d %H:%M}" if run else "never"
        table.add_row(c.company_title or "-", c.company_id, c.mode, c.status, hook.summary, last)
    console.print(table)


@main.command()
@click.argument("refused", nargs=-1, metavar="")
@friendly_errors
def connect(refused: tuple[str, ...]) -> None:
    """Add a Whop company by its API key, read from WHOP_API_KEY or standard input (never an argument)."""
    import os

    from bridge.companies import connect_api_key

    if refused:  # click would echo an unexpected argument, and that may be the key itself
        raise click.UsageError(
            "connect takes no arguments: the key is read from WHOP_API_KEY or standard input, so it never "
            "lands in your shell history"
        )

    key = os.environ.get("WHOP_API_KEY", "")
    if not key.strip():
        tty = sys.stdin.isatty()
        key = click.prompt("Whop company API key", hide_input=True) if tty else sys.stdin.readline()
    result = run_with_runtime(lambda runtime: connect_api_key(runtime, key))
    c = result.connection
    console.print(f"connected {c.company_title or c.company_id} ({c.company_id}) by API key", soft_wrap=True)
    console.print(f"webhook: {result.webhook.summary}", soft_wrap=True)


@main.command()
@click.argument("company_id")
@friendly_errors
def disconnect(company_id: str) -> None:
    """Remove one Whop company: revoke its grant, delete its webhook at Whop; its Twenty records stay."""
    from bridge.companies import disconnect as disconnect_company

    row = run_with_runtime(lambda runtime: disconnect_company(runtime, company_id))
    console.print(
        f"disconnected {row.company_title or row.company_id} ({row.company_id}); "
        "other companies and the records in Twenty are untouched",
        soft_wrap=True,
    )


@main.group()
def webhooks() -> None:
    """Inspect and replay stored Whop webhook deliveries."""


@webhooks.command("list")
@click.option("--failed", is_flag=True, help="Only deliveries that failed or were dead-lettered.")
@click.option("--limit", default=50, show_default=True)
@friendly_errors
def webhooks_list(failed: bool, limit: int) -> None:
    """Show the newest deliveries with their status and last error."""
    from bridge.store import inbox

    async def go(runtime: Runtime) -> tuple[list[Any], dict[str, int]]:
        engine = runtime.store
        return await inbox.list_events(engine, failed_only=failed, limit=limit), await inbox.counts(engine)

    events, counts = run_with_runtime(go)
    table = Table(title="Webhook inbox: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    for col in ("webhook id", "type", "company", "status", "attempts", "received", "last error"):
        table.add_column(col, overflow="fold")
    for e in events:
        table.add_row(
            e.webhook_id,
            e.event_type or "-",
            e.company_id or "-",
            e.status,
            str(e.attempts),
            e.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            (e.last_error or "")[:120],
        )
    console.print(table)


@webhooks.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--failed", is_flag=True, help="Replay every failed or dead-lettered delivery.")
@friendly_errors
def webhooks_replay(ids: tuple[str, ...], failed: bool) -> None:
    """Queue deliveries again (by id, or all failed ones); `serve` applies them."""
    from bridge.store import inbox

    if not ids and not failed:
        raise click.UsageError("name webhook ids or pass --failed")

    async def go(runtime: Runtime) -> tuple[int, list[str]]:
        unknown = [i for i in dict.fromkeys(ids) if await inbox.get_event(runtime.store, i) is None]
        known = [i for i in ids if i not in unknown]
        if ids and not known:
            return 0, unknown
        return await inbox.replay(runtime.store, known or None, failed_only=failed), unknown

    queued, unknown = run_with_runtime(go)
    console.print(f"queued {queued} delivery(ies) again")
    if unknown:  # a mistyped id must not look like success
        fail(f"no stored delivery has the id {', '.join(unknown)} (see `whop-twenty-bridge webhooks list`)")


@webhooks.command("recover")
@click.option("--company", "company_id", help="One company (default: every connected company).")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
    help="Replay deliveries sent after this UTC time (default: the last delivery stored).",
)
@friendly_errors
def webhooks_recover(company_id: str | None, since: Any) -> None:
    """Ask Whop to send again the deliveries the bridge missed (within Whop's 30 days)."""
    from datetime import UTC

    from bridge import registration

    async def go(runtime: Runtime) -> dict[str, Any]:
        when = since.replace(tzinfo=UTC) if since is not None else None
        targets = [company_id] if company_id else await runtime.companies()
        return {c: await registration.recover(runtime, c, since=when, force=True) for c in targets}

    asked = run_with_runtime(go)
    if not asked:
        console.print("no Whop company is connected")
    for company, when in asked.items():
        if when is None:
            console.print(f"{company}: no webhook registered by the bridge; nothing to replay", soft_wrap=True)
        else:
            text = f"{company}: Whop will replay the deliveries sent after {when:%Y-%m-%d %H:%M:%S} UTC"
            console.print(text, soft_wrap=True)


@webhooks.command("enable")
@click.argument("company_id")
@friendly_errors
def webhooks_enable(company_id: str) -> None:
    """Re-enable a company's webhook Whop disabled, and replay what it missed."""
    from bridge import registration

    state = run_with_runtime(lambda runtime: registration.enable(runtime, company_id))
    console.print(f"{company_id}: webhook {state.summary}")


@main.command()
@friendly_errors
def status() -> None:
    """Connections, the last provisioning, recent sync runs and the webhook inbox."""
    from bridge.store import connections, inbox
    from bridge.store import runs as run_store
    from bridge.store.provisioning_runs import last as last_provisioning

    async def go(runtime: Runtime) -> tuple[Any, Any, Any, Any]:
        engine = runtime.store
        return (
            await connections.list_connections(engine),
            await last_provisioning(engine),
            await run_store.recent_runs(engine, limit=10),
            await inbox.counts(engine),
        )

    conns, prov, runs, counts = run_with_runtime(go)
    if not conns:
        console.print("Whop: not connected (open the admin page and click Connect Whop, or set WHOP_API_KEY)")
    for c in conns:
        _print_connection(c)
    _print_provisioning(prov)
    console.print(_runs_table(runs))
    console.print("Webhook inbox: " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "empty"))


def _print_connection(c: Connection) -> None:
    """One connection's line, and its webhook's unless it was disconnected."""
    from bridge.registration import WebhookState

    expiry = f", token expires {c.token_expires_at:%Y-%m-%d %H:%M} UTC" if c.token_expires_at else ""
    console.print(f"Whop: {c.company_title or c.company_id} ({c.company_id}) — {c.mode}, {c.status}{expiry}")
    if c.status != "disconnected":
        console.print(f"  webhook: {WebhookState.of(c).summary}", soft_wrap=True)


def _print_provisioning(prov: dict[str, Any] | None) -> None:
    if prov:
        console.print(
            f"Provisioning: {prov['status']} at {prov['started_at']:%Y-%m-%d %H:%M} "
            f"(Twenty {prov['dialect'] or '?'}, {prov['mutations']} change(s))"
        )
    else:
        console.print("Provisioning: never run (whop-twenty-bridge provision)")


def _runs_table(runs: list[SyncRun]) -> Table:
    table = Table(title="Recent sync runs")
    for col in ("run", "kind", "trigger", "status", "started", "finished", "written", "unchanged", "problems"):
        table.add_column(col)
    for r in runs:
        table.add_row(*_run_cells(r))
    return table


def _run_cells(r: SyncRun) -> tuple[str, ...]:
    """A run's row: records written (created + updated) and left unchanged, summed over kinds."""
    counts_ = r.counts or {}
    written = sum(c.get("created", 0) + c.get("updated", 0) for c in counts_.values())
    unchanged = sum(c.get("unchanged", 0) for c in counts_.values())
    return (
        str(r.id),
        r.kind,
        r.trigger,
        r.status,
        f"{r.started_at:%m-%d %H:%M:%S}",
        f"{r.finished_at:%m-%d %H:%M:%S}" if r.finished_at else "-",
        str(written),
        str(unchanged),
        str(len(r.errors or [])),
    )


@main.command()
@friendly_errors
def doctor() -> None:
    """Check configuration, database, Twenty, Whop and the webhook secret; print what to fix."""
    from bridge.doctor import render_report, run_doctor

    # A bad setting is one of the report's lines here, not an `error:` exit, so load inside.
    report = run(run_doctor(settings_from_env))
    render_report(report, console)
    sys.exit(report.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
