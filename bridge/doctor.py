"""`whop-twenty-bridge doctor`: check a deployment end to end and say what to fix.

Each check becomes one line: ✓ (fine), ! (works, but look at it), ✗ (the bridge cannot do its
job until this is fixed) or – (not checked, because something it needs failed first). The exit
code is 1 when any line is ✗.

Everything here reads. The one request that looks like a write is the data-model permission
probe: an empty update of a field id that does not exist. Twenty checks the key's role before it
looks the field up, so the answer ("forbidden" or "not found") tells whether the key may change
the data model, and nothing can be changed by it. Secrets are never printed: every line is
scrubbed of every configured secret value before it is shown.

HTTP transports are injectable (`services.Transports`) so tests run the same checks against the
in-process fakes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from pydantic import SecretStr
from rich.console import Console
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.config import SECRET_VARIABLES, Settings, load_settings
from bridge.crypto import TokenBox, UndecryptableToken
from bridge.errors import AuthError, BridgeError, ConfigError
from bridge.services import Transports
from bridge.store import connections
from bridge.store.connections import Connection
from bridge.store.db import create_engine
from bridge.store.migrate import alembic_config, current_revision, head_revision
from bridge.twenty.data import TwentyDataClient
from bridge.twenty.metadata import MetadataClient, MetadataError
from bridge.twenty.provision import Plan, PlanItem, plan_workspace
from bridge.twenty.schema import load_data_model
from bridge.whop.client import WhopClient
from bridge.whop.oauth import DEFAULT_SCOPES

__all__ = ["Check", "Doctor", "Report", "render_report", "run_doctor"]

Status = Literal["ok", "warn", "fail", "skip"]
OK: Status = "ok"
WARN: Status = "warn"
FAIL: Status = "fail"
SKIP: Status = "skip"

SYMBOLS: dict[Status, tuple[str, str]] = {
    OK: ("✓", "green"),
    WARN: ("!", "yellow"),
    FAIL: ("✗", "red bold"),
    SKIP: ("–", "dim"),
}

# A random UUID no field will ever have: the permission probe must not be able to touch anything.
PROBE_FIELD_ID = "9d0c0c1e-5f0e-4c51-9d8e-d0c7012e0000"
PROBE_DOCUMENT = "mutation DoctorProbe($input: UpdateOneFieldMetadataInput!) { updateOneField(input: $input) { id } }"

# What the sync reads at Whop, and the permission each read needs (for the fix line).
WHOP_READS = (
    ("products", "access_pass:basic:read"),
    ("members", "member:basic:read"),
    ("payments", "payment:basic:read"),
    ("memberships", "member:basic:read"),
)
OIDC_SCOPES = frozenset({"openid", "profile", "email"})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MIN_PASSWORD = 12
# An access token closer than this to its expiry is not used for the live probe.
TOKEN_MARGIN = timedelta(minutes=2)
# Very short values are not scrubbed: replacing "a" everywhere would make the report unreadable.
MIN_SCRUB = 4


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    def skip(self, names: Iterable[str], reason: str) -> None:
        for name in names:
            self.add(name, SKIP, f"not checked: {reason}")

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == WARN]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def status_of(self, name: str) -> Status | None:
        return next((c.status for c in self.checks if c.name == name), None)

    def scrubbed(self, secrets: Iterable[str]) -> Report:
        values = sorted({s for s in secrets if len(s) >= MIN_SCRUB}, key=len, reverse=True)

        def clean(text: str) -> str:
            for value in values:
                text = text.replace(value, "***")
            return text

        return Report([replace(c, detail=clean(c.detail), fix=clean(c.fix)) for c in self.checks])


# Names of the lines, in the order they are printed.
CONFIGURATION = "configuration"
ADMIN = "admin page"
DATABASE = "database"
TWENTY_REACHABLE = "Twenty reachable"
TWENTY_KEY = "Twenty API key"
TWENTY_MODEL = "Twenty data model"
TWENTY_PERMISSION = "Twenty data-model permission"
TWENTY_RECORDS = "Twenty records API"
WHOP_CONNECTION = "Whop connection"
WHOP_ACCESS = "Whop permissions"
WEBHOOK_CHECK = "Whop webhook secret"
PUBLIC_URL = "public URL"

TWENTY_AFTER_KEY = (TWENTY_MODEL, TWENTY_PERMISSION, TWENTY_RECORDS)


async def run_doctor(
    load: Callable[[], Settings] = load_settings,
    *,
    transports: Transports | None = None,
    now: Callable[[], datetime] | None = None,
    http_timeout: float = 10.0,
) -> Report:
    """Load the settings (a bad one is reported, not raised) and run every check."""
    try:
        settings = load()
    except ConfigError as exc:
        report = Report()
        report.add(
            CONFIGURATION, FAIL, str(exc), f"fix {exc.variable} in the environment (or .env) and run doctor again"
        )
        return report.scrubbed(_environment_secrets())
    report = await Doctor(settings, transports=transports, now=now, http_timeout=http_timeout).run()
    return report.scrubbed([*_environment_secrets(), *secret_values(settings)])


class Doctor:
    def __init__(
        self,
        settings: Settings,
        *,
        transports: Transports | None = None,
        now: Callable[[], datetime] | None = None,
        http_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.transports = transports or Transports()
        self.now = now or (lambda: datetime.now(UTC))
        # Shorter than the sync's timeouts: a doctor that hangs for minutes is no help.
        self.timeout = min(http_timeout, settings.twenty_timeout_seconds)
        self.report = Report()
        self._engine: AsyncEngine | None = None

    async def run(self) -> Report:
        self.report.add(CONFIGURATION, OK, "the settings are valid")
        try:
            self._admin()
            await self._database()
            await self._twenty()
            await self._whop()
            self._webhook_secret()
            self._public_url()
        finally:
            if self._engine is not None:
                await self._engine.dispose()
        return self.report

    # Bridge ---------------------------------------------------------------------------------

    def _admin(self) -> None:
        s = self.settings
        missing = []
        if s.bridge_admin_password is None or not s.bridge_admin_password.get_secret_value():
            missing.append("BRIDGE_ADMIN_PASSWORD")
        if s.bridge_secret_key is None:
            missing.append("BRIDGE_SECRET_KEY")
        if missing:
            self.report.add(
                ADMIN,
                WARN,
                f"nobody can log in to the admin page (Connect Whop, progress) until {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} set",
                "BRIDGE_SECRET_KEY: `whop-twenty-bridge keygen`; BRIDGE_ADMIN_PASSWORD: a long random password "
                "(`openssl rand -base64 24`)",
            )
            return
        assert s.bridge_admin_password is not None
        if len(s.bridge_admin_password.get_secret_value()) < MIN_PASSWORD:
            self.report.add(
                ADMIN,
                WARN,
                f"BRIDGE_ADMIN_PASSWORD is shorter than {MIN_PASSWORD} characters",
                "use a long random password (`openssl rand -base64 24`)",
            )
            return
        self.report.add(ADMIN, OK, "BRIDGE_ADMIN_PASSWORD and BRIDGE_SECRET_KEY are set")

    async def _database(self) -> None:
        url = self.settings.database_url
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError:
            self.report.add(DATABASE, FAIL, "DATABASE_URL is not a valid database URL", _DATABASE_FIX)
            return
        shown = parsed.render_as_string(hide_password=True)
        probe_url = url
        if parsed.get_backend_name() == "sqlite":
            if not self._sqlite_file_ready(parsed, shown):
                return
        elif "connect_timeout" not in parsed.query:
            # Without it an unreachable PostgreSQL host can hold the check for minutes.
            probe_url = parsed.update_query_dict({"connect_timeout": str(max(1, int(self.timeout)))}).render_as_string(
                hide_password=False
            )
        try:
            revision = await asyncio.to_thread(current_revision, probe_url)
        except Exception as exc:
            self.report.add(DATABASE, FAIL, f"cannot open {shown}: {describe(exc)}", _DATABASE_FIX)
            return
        head = head_revision()
        if revision == head:
            self.report.add(DATABASE, OK, f"{shown}: schema at revision {head} (current)")
        elif revision is None:
            self.report.add(
                DATABASE,
                WARN,
                f"{shown} is reachable but empty",
                "`serve` and `sync` create the tables when they start",
            )
            return
        elif revision in _known_revisions():
            self.report.add(
                DATABASE,
                WARN,
                f"{shown}: schema at revision {revision}, this version's is {head}",
                "`serve` and `sync` migrate it when they start",
            )
        else:
            self.report.add(
                DATABASE,
                FAIL,
                f"{shown}: schema at revision {revision}, which this version of the bridge does not know",
                "a newer bridge migrated this database: run that version (or restore a backup)",
            )
            return
        self._engine = create_engine(url)

    def _sqlite_file_ready(self, parsed: sa.URL, shown: str) -> bool:
        """Checks a SQLite file without creating it (opening a missing file would create one)."""
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            self.report.add(
                DATABASE,
                WARN,
                "an in-memory SQLite database: connections and sync progress are lost when the bridge stops",
                "set DATABASE_URL to a file (sqlite:////data/whop-twenty-bridge.db) or PostgreSQL",
            )
            return False
        path = Path(database)
        if not path.exists():
            folder = path.absolute().parent
            if folder.is_dir() and os.access(folder, os.W_OK):
                self.report.add(
                    DATABASE,
                    WARN,
                    f"{shown} does not exist yet",
                    "`serve` and `sync` create and migrate it when they start",
                )
            else:
                self.report.add(
                    DATABASE,
                    FAIL,
                    f"{shown}: the folder {folder} does not exist or is not writable",
                    "point DATABASE_URL at a writable folder (the Docker image keeps its state in the /data volume)",
                )
            return False
        if not os.access(path, os.W_OK):
            self.report.add(DATABASE, FAIL, f"{shown} is not writable by this user", "fix the file's owner or mode")
            return False
        return True

    # Twenty ---------------------------------------------------------------------------------

    async def _twenty(self) -> None:
        s = self.settings
        if not s.twenty_url:
            self.report.add(
                TWENTY_REACHABLE,
                FAIL,
                "TWENTY_URL is not set",
                "set TWENTY_URL to Twenty's server address (http://server:3000 inside docker-compose.twenty.yml)",
            )
            self.report.skip((TWENTY_KEY, *TWENTY_AFTER_KEY), "TWENTY_URL is not set")
            return
        if not await self._twenty_health(s.twenty_url):
            self.report.skip((TWENTY_KEY, *TWENTY_AFTER_KEY), "Twenty is not reachable")
            return
        if s.twenty_api_key is None or not s.twenty_api_key.get_secret_value():
            self.report.add(TWENTY_KEY, FAIL, "TWENTY_API_KEY is not set", _TWENTY_KEY_FIX)
            self.report.skip(TWENTY_AFTER_KEY, "no API key")
            return
        key = s.twenty_api_key.get_secret_value()
        try:
            async with MetadataClient(
                s.twenty_url, key, transport=self.transports.twenty, timeout=self.timeout
            ) as meta:
                self.report.add(TWENTY_KEY, OK, f"accepted; the metadata API speaks {meta.dialect.value}")
                plan = await self._twenty_model(meta)
                await self._twenty_permission(meta, plan)
        except Exception as exc:
            if self.report.status_of(TWENTY_KEY) is None:
                if isinstance(exc, AuthError):
                    self.report.add(TWENTY_KEY, FAIL, str(exc), _TWENTY_KEY_FIX)
                    self.report.skip(TWENTY_AFTER_KEY, "the API key was refused")
                else:
                    self.report.add(
                        TWENTY_KEY,
                        FAIL,
                        f"the metadata API failed: {describe(exc)}",
                        "check TWENTY_URL and Twenty's logs",
                    )
                    self.report.skip(TWENTY_AFTER_KEY, "the metadata API failed")
                return
            # The model and permission checks report their own failures; this is whatever is left.
            left = [n for n in TWENTY_AFTER_KEY if self.report.status_of(n) is None]
            self.report.add(left[0] if left else TWENTY_RECORDS, FAIL, f"the metadata API failed: {describe(exc)}")
            self.report.skip(left[1:], "the metadata API failed")
            return
        await self._twenty_records(s.twenty_url, key, plan)

    async def _twenty_health(self, url: str) -> bool:
        try:
            async with httpx.AsyncClient(transport=self.transports.twenty, timeout=self.timeout) as http:
                response = await http.get(f"{url}/healthz")
        except Exception as exc:
            self.report.add(
                TWENTY_REACHABLE,
                FAIL,
                f"cannot reach {url}: {describe(exc)}",
                "start Twenty, or fix TWENTY_URL (inside docker-compose.twenty.yml it is http://server:3000)",
            )
            return False
        if response.status_code == 200:
            self.report.add(TWENTY_REACHABLE, OK, f"GET {url}/healthz answered 200")
            return True
        if response.status_code == 404:
            # Something answers, but not Twenty's health endpoint; the metadata check says more.
            self.report.add(
                TWENTY_REACHABLE,
                WARN,
                f"{url}/healthz answered 404",
                "is TWENTY_URL Twenty's server address (not its front end or a proxy path)?",
            )
            return True
        self.report.add(
            TWENTY_REACHABLE,
            FAIL,
            f"GET {url}/healthz answered {response.status_code}: Twenty is starting or unhealthy",
            "wait for it, or read its logs (`docker compose -f docker-compose.twenty.yml logs server`)",
        )
        return False

    async def _twenty_model(self, meta: MetadataClient) -> Plan | None:
        try:
            plan = await plan_workspace(meta, load_data_model(self.settings.bridge_schema_dir), self._public_url_value)
        except Exception as exc:
            self.report.add(TWENTY_MODEL, FAIL, f"cannot compare the data model: {describe(exc)}")
            return None
        essential, optional = _pending(plan)
        if plan.conflicts:
            names = ", ".join(i.name for i in plan.conflicts[:5])
            self.report.add(
                TWENTY_MODEL,
                FAIL,
                f"{len(plan.conflicts)} conflict(s) with the workspace: {names}",
                "`whop-twenty-bridge provision --dry-run` shows each one and why",
            )
        elif essential:
            names = ", ".join(i.name for i in essential[:6]) + (", …" if len(essential) > 6 else "")
            self.report.add(
                TWENTY_MODEL,
                FAIL,
                f"not provisioned: {len(essential)} object(s)/field(s) missing ({names})",
                "run `whop-twenty-bridge provision` (or Provision on the admin page)",
            )
        elif optional:
            names = ", ".join(i.name for i in optional[:4])
            self.report.add(
                TWENTY_MODEL,
                WARN,
                f"the objects and fields are there; {len(optional)} optional change(s) pending ({names})",
                "run `whop-twenty-bridge provision`",
            )
        else:
            manual = [i for i in plan.items if i.status == "manual"]
            note = f"; {len(manual)} item(s) to add by hand (provision --dry-run lists them)" if manual else ""
            self.report.add(TWENTY_MODEL, OK, f"provisioned: every object, field and view is present{note}")
        return plan

    async def _twenty_permission(self, meta: MetadataClient, plan: Plan | None) -> None:
        unprovisioned = plan is None or bool(plan.pending)
        try:
            await meta.execute(
                PROBE_DOCUMENT, {"input": {"id": PROBE_FIELD_ID, "update": {}}}, operation="data-model permission probe"
            )
        except AuthError:
            if unprovisioned:
                self.report.add(
                    TWENTY_PERMISSION,
                    FAIL,
                    "the API key's role lacks the data-model permission, and provisioning still has work to do",
                    "give the key a role with Settings → Data model access (e.g. Admin), at least until provisioning "
                    "is done",
                )
            else:
                self.report.add(
                    TWENTY_PERMISSION,
                    WARN,
                    "the API key's role lacks the data-model permission; the model is provisioned, so syncing works, "
                    "but a new Whop status cannot be added as an option by itself",
                    "give the key a role with Settings → Data model access (e.g. Admin)",
                )
            return
        except MetadataError as exc:
            if exc.code == "NOT_FOUND":
                # The role check runs before the lookup: "not found" means the key got past it.
                self.report.add(
                    TWENTY_PERMISSION,
                    OK,
                    "granted (an empty update of a field that does not exist was refused as 'not found', "
                    "not as 'forbidden'; nothing was changed)",
                )
                return
            outcome = describe(exc)
        except Exception as exc:
            outcome = describe(exc)
        else:
            outcome = "the probe was accepted"
        self.report.add(
            TWENTY_PERMISSION,
            WARN,
            f"cannot verify without a write ({outcome})",
            "run `whop-twenty-bridge provision --dry-run`; `provision` reports a missing permission on its first "
            "change",
        )

    async def _twenty_records(self, url: str, key: str, plan: Plan | None) -> None:
        plurals = ["people", "opportunities"]
        if plan is not None and not any(i.kind == "object" and i.name == "whopProduct" for i in plan.pending):
            plurals.append("whopProducts")
        try:
            async with TwentyDataClient(
                url,
                key,
                requests_per_minute=self.settings.twenty_requests_per_minute,
                transport=self.transports.twenty,
                timeout=self.timeout,
                max_attempts=1,
            ) as data:
                for plural in plurals:
                    await data.graphql(
                        f"query DoctorRead {{ {plural}(first: 1) {{ edges {{ node {{ id }} }} }} }}",
                        {},
                        operation=f"read {plural}",
                        write=False,
                    )
        except AuthError as exc:
            self.report.add(
                TWENTY_RECORDS,
                FAIL,
                str(exc),
                "give the key's role read and write access to People, Opportunities and Whop products",
            )
            return
        except Exception as exc:
            self.report.add(TWENTY_RECORDS, FAIL, f"a read failed: {describe(exc)}", "read Twenty's server logs")
            return
        self.report.add(
            TWENTY_RECORDS,
            OK,
            f"{', '.join(plurals)} readable (writes are not tried: a refused write shows in the sync's report)",
        )

    # Whop -----------------------------------------------------------------------------------

    async def _whop(self) -> None:
        s = self.settings
        rows: list[Connection] = []
        if self._engine is not None:
            try:
                rows = await connections.list_connections(self._engine)
            except Exception as exc:
                self.report.add(WHOP_CONNECTION, FAIL, f"cannot read the stored connections: {describe(exc)}")
                self.report.skip((WHOP_ACCESS,), "no connection")
                return
        oauth = [c for c in rows if c.mode == "oauth"]
        live = [c for c in oauth if c.status == connections.STATUS_CONNECTED and c.has_tokens]
        stuck = [c for c in oauth if c.status == connections.STATUS_NEEDS_RECONNECT]
        api_key = s.whop_api_key.get_secret_value() if s.whop_api_key is not None else ""
        if live:
            # The same choice the sync makes (services.whop_credentials): the newest OAuth connection.
            await self._whop_oauth(max(live, key=lambda c: (c.connected_at, c.id)))
        elif api_key:
            await self._whop_api_key(api_key, stuck[-1] if stuck else None)
        elif stuck:
            row = stuck[-1]
            reason = f" ({row.last_error})" if row.last_error else ""
            self.report.add(
                WHOP_CONNECTION,
                FAIL,
                f"{_company(row)} must be reconnected{reason}",
                f"open the admin page ({self._public_url_value}/) and use Reconnect",
            )
            self.report.skip((WHOP_ACCESS,), "no usable connection")
        else:
            where = "" if self._engine is not None else " (no stored connection could be read: see the database line)"
            fix = (
                f"open the admin page ({self._public_url_value}/) and use Connect Whop"
                if s.whop_client_id
                else "set WHOP_API_KEY (a company API key), or WHOP_CLIENT_ID and WHOP_CLIENT_SECRET to use "
                "Connect Whop on the admin page"
            )
            self.report.add(
                WHOP_CONNECTION, FAIL, f"no Whop company is connected and WHOP_API_KEY is not set{where}", fix
            )
            self.report.skip((WHOP_ACCESS,), "no connection")

    async def _whop_oauth(self, row: Connection) -> None:
        s = self.settings
        if s.bridge_secret_key is None:
            self.report.add(
                WHOP_CONNECTION,
                FAIL,
                f"{_company(row)} is connected by OAuth, but BRIDGE_SECRET_KEY is not set: its tokens cannot be read",
                "set BRIDGE_SECRET_KEY back to the key the tokens were stored with",
            )
            self.report.skip((WHOP_ACCESS,), "the tokens cannot be read")
            return
        box = TokenBox(s.fernet)
        try:
            access = row.access_token(box)
            refresh = row.refresh_token(box)
        except UndecryptableToken:
            self.report.add(
                WHOP_CONNECTION,
                FAIL,
                f"{_company(row)}: the stored tokens cannot be decrypted with BRIDGE_SECRET_KEY",
                "put the key they were stored with back (a new key goes first: NEW,OLD), or reconnect on the admin "
                "page",
            )
            self.report.skip((WHOP_ACCESS,), "the tokens cannot be read")
            return
        now = self.now()
        expires = row.token_expires_at
        fresh = access is not None and (expires is None or expires - TOKEN_MARGIN > now)
        if fresh:
            expiry_text = "access token valid" + (f" for {_minutes(expires - now)}" if expires is not None else "")
        elif refresh:
            expiry_text = "access token expired; it is refreshed on next use"
        else:
            self.report.add(
                WHOP_CONNECTION,
                FAIL,
                f"{_company(row)}: the access token expired and there is no refresh token",
                f"reconnect on the admin page ({self._public_url_value}/)",
            )
            self.report.skip((WHOP_ACCESS,), "no usable token")
            return
        self.report.add(WHOP_CONNECTION, OK, f"OAuth: {_company(row)}, connected; {expiry_text}")
        missing = [x for x in DEFAULT_SCOPES if x not in OIDC_SCOPES and x not in row.scope_list]
        scopes = ""
        if row.scopes is None:
            scopes = "granted scopes not recorded"
        elif missing:
            scopes = f"granted scopes lack {', '.join(missing)}"
        if not fresh:
            # Refreshing here would rotate the refresh token: that is the sync's job, not the doctor's.
            status = WARN if missing else OK
            detail = "not probed live (the token must be refreshed first)" + (f"; {scopes}" if scopes else "")
            self.report.add(WHOP_ACCESS, status, detail, "reconnect on the admin page to grant them" if missing else "")
            return
        assert access is not None
        refused = "Whop refused the stored OAuth access token (401); reconnect if the next sync cannot refresh it"
        await self._whop_reads(_FixedToken(access, refused), row.company_id, scopes, missing)

    async def _whop_api_key(self, api_key: str, stuck: Connection | None) -> None:
        s = self.settings
        company_id = s.whop_company_id or ""
        note = f"; the OAuth connection of {_company(stuck)} needs reconnecting, so the key is used" if stuck else ""
        tokens = _FixedToken(api_key, "Whop rejected WHOP_API_KEY (401)")
        try:
            async with self._whop_client(tokens, company_id or "biz_pending") as whop:
                account = await whop.get_account_me()
        except _TokenRefused as exc:
            self.report.add(
                WHOP_CONNECTION,
                FAIL,
                str(exc),
                "create a company API key in Whop's dashboard (Developer → API keys) and put it in WHOP_API_KEY",
            )
            self.report.skip((WHOP_ACCESS,), "the API key was refused")
            return
        except AuthError as exc:
            # 403 on /accounts/me: the key works but may not read its account (an app key, say).
            if not company_id:
                self.report.add(
                    WHOP_CONNECTION,
                    FAIL,
                    f"the API key did not identify its company: {describe(exc)}",
                    "set WHOP_COMPANY_ID to the company to sync (biz_…)",
                )
                self.report.skip((WHOP_ACCESS,), "no company")
                return
            self.report.add(
                WHOP_CONNECTION,
                WARN,
                f"API key for {company_id} (its account could not be read: {describe(exc)}){note}",
            )
        except Exception as exc:
            self.report.add(
                WHOP_CONNECTION,
                FAIL,
                f"cannot reach Whop at {s.whop_api_url}: {describe(exc)}",
                "check the network and WHOP_API_URL (the default is https://api.whop.com)",
            )
            self.report.skip((WHOP_ACCESS,), "Whop is not reachable")
            return
        else:
            found = str(account.get("id") or "")
            title = account.get("title")
            shown = f"{title} ({found})" if title else found
            if company_id and found and found != company_id:
                self.report.add(
                    WHOP_CONNECTION,
                    WARN,
                    f"the API key belongs to {shown}, but WHOP_COMPANY_ID is {company_id}{note}",
                    "set WHOP_COMPANY_ID to the key's company, or remove it",
                )
            else:
                self.report.add(WHOP_CONNECTION, WARN if stuck else OK, f"API key of {shown}{note}")
                company_id = company_id or found
        if not company_id:
            self.report.skip((WHOP_ACCESS,), "Whop did not name the key's company")
            return
        await self._whop_reads(tokens, company_id, "API keys carry no scope list", [])

    async def _whop_reads(self, tokens: _FixedToken, company_id: str, scopes: str, missing: list[str]) -> None:
        readable: list[str] = []
        try:
            async with self._whop_client(tokens, company_id) as whop:
                for resource, _permission in WHOP_READS:
                    await whop.request("GET", f"/{resource}", {"account_id": company_id, "first": 1})
                    readable.append(resource)
        except AuthError as exc:
            needed = next(p for r, p in WHOP_READS if r not in readable)
            self.report.add(
                WHOP_ACCESS,
                FAIL,
                f"{describe(exc)}" + (f"; {scopes}" if scopes else ""),
                f"grant {needed} (API key: its permissions in Whop's dashboard; OAuth: reconnect)",
            )
            return
        except Exception as exc:
            self.report.add(
                WHOP_ACCESS, FAIL, f"a read failed: {describe(exc)}", "check WHOP_API_URL and Whop's status"
            )
            return
        detail = f"can read {', '.join(readable)}" + (f"; {scopes}" if scopes else "")
        if missing:
            self.report.add(WHOP_ACCESS, WARN, detail, "reconnect on the admin page to grant the missing scopes")
        else:
            self.report.add(WHOP_ACCESS, OK, detail)

    def _whop_client(self, tokens: _FixedToken, company_id: str) -> _OwnedWhopClient:
        http = httpx.AsyncClient(transport=self.transports.whop, timeout=self.timeout)
        client = WhopClient(
            self.settings.whop_api_url,
            tokens,
            company_id,
            http=http,
            requests_per_second=self.settings.whop_requests_per_second,
            max_retries=0,
            timeout=self.timeout,
        )
        return _OwnedWhopClient(client, http)

    # Webhooks and URL -------------------------------------------------------------------------

    def _webhook_secret(self) -> None:
        secrets = self.settings.webhook_secrets
        endpoint = f"{self._public_url_value}/webhooks/whop"
        if not secrets:
            self.report.add(
                WEBHOOK_CHECK,
                FAIL,
                "WHOP_WEBHOOK_SECRET is not set: every Whop webhook is refused, and changes wait for the hourly "
                "reconciliation",
                f"in Whop's dashboard (Developer → Webhooks) add a webhook for {endpoint}, then put its secret "
                "(ws_…) in WHOP_WEBHOOK_SECRET",
            )
            return
        odd = [str(n) for n, value in enumerate(secrets, 1) if not value.startswith("ws_")]
        if odd:
            which = "it does" if len(secrets) == 1 else f"value(s) {', '.join(odd)} of {len(secrets)} do"
            self.report.add(
                WEBHOOK_CHECK,
                WARN,
                f"WHOP_WEBHOOK_SECRET is set, but {which} not look like a Whop webhook secret (ws_…)",
                f"copy the secret shown on the page of the webhook for {endpoint} in Whop's dashboard",
            )
            return
        rotation = " (several: a rotation is in progress)" if len(secrets) > 1 else ""
        self.report.add(WEBHOOK_CHECK, OK, f"{len(secrets)} secret(s) set, shaped like Whop's (ws_…){rotation}")

    def _public_url(self) -> None:
        url = self._public_url_value
        parts = urlsplit(url)
        if parts.scheme == "https":
            self.report.add(PUBLIC_URL, OK, url)
        elif (parts.hostname or "") in LOCAL_HOSTS:
            self.report.add(PUBLIC_URL, OK, f"{url} (local: fine for a trial; Whop cannot deliver webhooks to it)")
        else:
            self.report.add(
                PUBLIC_URL,
                WARN,
                f"{url} is plain http: webhooks, the OAuth callback and the admin login would travel unencrypted",
                "put the bridge behind HTTPS (a reverse proxy) and set BRIDGE_PUBLIC_URL to its https:// address",
            )

    @property
    def _public_url_value(self) -> str:
        return (self.settings.bridge_public_url or "http://127.0.0.1:8000").rstrip("/")


# Helpers --------------------------------------------------------------------------------------

_DATABASE_FIX = (
    "check DATABASE_URL and that its server is up (in docker-compose.twenty.yml: the whop_bridge database "
    "on the db service)"
)
_TWENTY_KEY_FIX = (
    "in Twenty: Settings → APIs & Webhooks → create an API key (role with data-model access, e.g. Admin), "
    "and put it in TWENTY_API_KEY"
)


class _TokenRefused(AuthError):
    """Whop answered 401 to the credential itself (not 403 to one permission)."""


class _FixedToken:
    """A token used as is. The doctor never refreshes an OAuth token: refreshing rotates it."""

    __slots__ = ("_refused", "_token")

    def __init__(self, token: str, refused: str) -> None:
        self._token = token
        self._refused = refused

    def __repr__(self) -> str:
        return "_FixedToken(***)"

    async def token(self) -> str:
        return self._token

    async def invalidate(self, token: str) -> None:
        raise _TokenRefused(self._refused)


class _OwnedWhopClient:
    """A WhopClient plus the httpx client it was given (WhopClient leaves a given client open)."""

    def __init__(self, client: WhopClient, http: httpx.AsyncClient) -> None:
        self.client = client
        self.http = http

    async def __aenter__(self) -> WhopClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self.http.aclose()


def _pending(plan: Plan) -> tuple[list[PlanItem], list[PlanItem]]:
    # Objects and fields the sync writes are essential; options, views and links are not.
    essential = [i for i in plan.pending if i.kind in ("object", "field") and i.status == "create"]
    optional = [i for i in plan.pending if i not in essential]
    return essential, optional


def _company(row: Connection) -> str:
    return f"{row.company_title} ({row.company_id})" if row.company_title else row.company_id


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def _known_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def describe(exc: BaseException) -> str:
    """One short line about a failure; secrets are scrubbed later from the whole report."""
    if isinstance(exc, BridgeError):
        text = str(exc)
    elif isinstance(exc, httpx.ConnectError):
        text = "connection refused or host not found"
    elif isinstance(exc, httpx.TimeoutException):
        text = "timed out"
    elif isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        text = f"{type(exc.orig).__name__}: {exc.orig}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if len(first) <= 300 else first[:297] + "…"


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, whole and split at commas (rotation lists)."""
    found: list[str] = []
    for value in settings.model_dump().values():
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            found.append(raw)
            found.extend(part.strip() for part in raw.split(","))
    try:
        password = sa.make_url(settings.database_url).password
    except sa.exc.ArgumentError:
        password = None
    if password:
        found.append(str(password))
    return [v for v in found if v]


def _environment_secrets() -> list[str]:
    # When the settings do not load, the raw variables are all there is to scrub with. DATABASE_URL
    # is not scrubbed whole (it is shown with its password hidden); only its password is.
    found: list[str] = []
    for name in SECRET_VARIABLES - {"DATABASE_URL"}:
        raw = os.environ.get(name)
        if raw:
            found.append(raw)
            found.extend(part.strip() for part in raw.split(","))
    raw_url = os.environ.get("DATABASE_URL")
    if raw_url:
        try:
            password = sa.make_url(raw_url).password
        except sa.exc.ArgumentError:
            password = None
        if password:
            found.append(str(password))
    return [v for v in found if v]


def render_report(report: Report, console: Console) -> None:
    for check in report.checks:
        symbol, style = SYMBOLS[check.status]
        line = Text()
        line.append(f"{symbol} ", style=style)
        line.append(check.name, style="bold")
        line.append(f": {check.detail}")
        console.print(line)
        if check.fix and check.status in (FAIL, WARN):
            console.print(Text(f"    fix: {check.fix}", style="dim"))
    if report.failed:
        console.print(
            Text(f"{len(report.failed)} problem(s) to fix, {len(report.warnings)} warning(s)", style="red bold")
        )
    else:
        console.print(Text(f"all required checks passed, {len(report.warnings)} warning(s)", style="green"))
