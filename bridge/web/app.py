"""The admin web app: login, Connect Whop, the admin page with live job progress, webhooks.

Every admin route needs a logged-in session; every POST (except Whop's webhook, which is
signed instead) needs the session's CSRF token. Pages and JSON never carry a token or a key.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import jinja2
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge import companies, registration
from bridge.background import Background
from bridge.config import Settings
from bridge.crypto import TokenBox
from bridge.errors import BridgeError
from bridge.runtime import Runtime
from bridge.store import connections
from bridge.store.runs import RunKind
from bridge.web import connect, ops, security, views
from bridge.web.jobs import Busy, JobRunner
from bridge.webhooks import WebhookReceiver
from bridge.whop.oauth import WhopOAuth

__all__ = ["AccessLogScrubber", "WebContext", "create_app"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
WORKER_POLL_SECONDS = 0.25  # a separate worker process learns of new deliveries by polling
NO_STORE = {"Cache-Control": "no-store"}
Handler = Callable[[Request], Awaitable[Response]]
FormHandler = Callable[[Request, FormData], Awaitable[Response]]


@dataclass
class WebContext:
    """Everything a request handler needs; one per app, on `app.state.ctx`."""

    runtime: Runtime
    templates: Jinja2Templates
    jobs: JobRunner
    throttle: security.LoginThrottle
    sessions: security.AdminSessions
    background: Background | None = None  # the inbox worker and the scheduler (`serve`, role all)
    receiver_: WebhookReceiver | None = None

    @property
    def receiver(self) -> WebhookReceiver:
        """Made on first use, on the web app's event loop (its group commit belongs to it)."""
        if self.receiver_ is None:
            self.receiver_ = _make_receiver(self)
        return self.receiver_

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def engine(self) -> AsyncEngine:
        return self.runtime.store

    def box(self) -> TokenBox:
        return TokenBox(self.settings.fernet)

    def oauth(self) -> WhopOAuth:
        return WhopOAuth.from_settings(self.settings, transport=self.runtime.transports.whop)


def _ctx(request: Request) -> WebContext:
    return cast(WebContext, request.app.state.ctx)


# Rendering ------------------------------------------------------------------------------------


def _fmt_time(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is not None:  # PostgreSQL answers in the session's zone; SQLite gives naive UTC
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["dt"] = _fmt_time
    return Jinja2Templates(env=env)


def render(request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200) -> Response:
    ctx = _ctx(request)
    base: dict[str, Any] = {
        "admin": security.is_admin(request),
        "csrf": security.csrf_token(request),
        "flashes": security.pop_flashes(request),
        "csrf_field": security.CSRF_FIELD,
    }
    base.update(context or {})
    return ctx.templates.TemplateResponse(request, name, base, status_code=status, headers=NO_STORE)


def message_page(request: Request, title: str, message: str, status: int = 400, *, tone: str = "bad") -> Response:
    return render(request, "message.html", {"title": title, "message": message, "tone": tone}, status)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/webhooks/")) or "json" in request.headers.get("accept", "")


async def not_found(request: Request, exc: Exception) -> Response:
    """An unknown URL: a page in the app's style (JSON for API clients), not a bare "Not Found"."""
    if _wants_json(request):
        return JSONResponse({"error": "not found"}, status_code=404, headers=NO_STORE)
    text = "There is nothing at this address. The admin page has everything the bridge shows."
    return message_page(request, "Page not found", text, 404, tone="muted")


async def server_error(request: Request, exc: Exception) -> Response:
    """An unexpected error: a styled page, never a stack trace (the error goes to the log).

    This runs outside the session middleware, so the page is rendered without a session."""
    if _wants_json(request):
        return JSONResponse({"error": "internal error; see the bridge's log"}, status_code=500, headers=NO_STORE)
    context = {
        "title": "Something went wrong",
        "message": "The bridge hit an unexpected error and logged it. Nothing was lost: try again, "
        "and if it keeps happening, look at the bridge's log.",
        "tone": "bad",
        "admin": False,
        "csrf": "",
        "flashes": [],
        "csrf_field": security.CSRF_FIELD,
    }
    return _ctx(request).templates.TemplateResponse(request, "message.html", context, status_code=500, headers=NO_STORE)


ERROR_PAGES: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {404: not_found, 500: server_error}


# Access control -----------------------------------------------------------------------------------


def admin_page(fn: Handler) -> Handler:
    """A page: anonymous visitors are sent to the login form and see nothing else."""

    async def wrapper(request: Request) -> Response:
        if not security.is_admin(request):
            return RedirectResponse("/login", status_code=303, headers=NO_STORE)
        return await fn(request)

    return wrapper


def admin_api(fn: Handler) -> Handler:
    async def wrapper(request: Request) -> Response:
        if not security.is_admin(request):
            return JSONResponse({"error": "login required"}, status_code=401, headers=NO_STORE)
        return await fn(request)

    return wrapper


def checked_post(*, admin: bool) -> Callable[[FormHandler], Handler]:
    """A state-changing POST: logged in (when `admin`), then the CSRF token, then the handler."""

    def decorate(fn: FormHandler) -> Handler:
        async def wrapper(request: Request) -> Response:
            if admin and not security.is_admin(request):
                return RedirectResponse("/login", status_code=303, headers=NO_STORE)
            form = await request.form(max_files=0, max_fields=20)
            if not security.csrf_ok(request, form, _ctx(request).settings):
                return message_page(
                    request,
                    "Request refused",
                    "The form was missing its security token or came from another site. Reload the page and try again.",
                    403,
                )
            return await fn(request, form)

        return wrapper

    return decorate


# Login ----------------------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    if security.is_admin(request):
        return RedirectResponse("/", status_code=303)
    problems = security.setup_problems(_ctx(request).settings)
    return render(request, "login.html", {"problems": problems, "error": None}, 503 if problems else 200)


@checked_post(admin=False)
async def login_submit(request: Request, form: FormData) -> Response:
    ctx = _ctx(request)
    problems = security.setup_problems(ctx.settings)
    if problems:
        return render(request, "login.html", {"problems": problems, "error": None}, 503)
    client = request.client.host if request.client else "unknown"
    claim = ctx.throttle.claim(request, ctx.settings)
    wait = await ctx.throttle.wait(claim)
    if wait:
        error = f"Too many failed attempts. Try again in {wait} second{'' if wait == 1 else 's'}."
        refused = render(request, "login.html", {"problems": [], "error": error}, 429)
        refused.headers["Retry-After"] = str(wait)
        return refused
    password = form.get("password")
    if not isinstance(password, str) or not security.password_matches(ctx.settings, password):
        log.warning("failed admin login from %s", client)
        return render(request, "login.html", {"problems": [], "error": "That password is not right."}, 401)
    await ctx.throttle.succeeded(claim)
    await ctx.sessions.start(request)
    next_field = form.get("next")
    target = security.safe_next(next_field if isinstance(next_field, str) else None)
    response = RedirectResponse(target, status_code=303)
    security.remember_device(response, request, ctx.settings)
    return response


@checked_post(admin=False)
async def logout(request: Request, form: FormData) -> Response:
    await _ctx(request).sessions.end(request)
    return RedirectResponse("/login", status_code=303)


@checked_post(admin=True)
async def logout_all(request: Request, form: FormData) -> Response:
    """Every admin session on every replica ends, this one too (a lost laptop, a shared cookie)."""
    ended = await _ctx(request).sessions.end_all(request)
    log.info("logged out all %d admin sessions", ended)
    security.flash(request, "Every session was logged out. Log in again.", "ok")
    return RedirectResponse("/login", status_code=303)


# Admin page and status ---------------------------------------------------------------------------


@admin_page
async def admin_home(request: Request) -> Response:
    ctx = _ctx(request)
    state = await views.admin_state(ctx.settings, ctx.engine, ctx.jobs, request.query_params.get("show", "all"))
    return render(request, "admin.html", state)


@admin_api
async def api_status(request: Request) -> Response:
    ctx = _ctx(request)
    conn, _ = await views.connection_view(ctx.settings, ctx.engine)
    return JSONResponse(views.status_json(conn, ctx.jobs), headers=NO_STORE)


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


# Connect Whop -------------------------------------------------------------------------------------------


@checked_post(admin=True)
async def connect_start(request: Request, form: FormData) -> Response:
    ctx = _ctx(request)
    if not ctx.settings.whop_client_id:
        return message_page(
            request, "Connect Whop is not set up", "Set WHOP_CLIENT_ID and WHOP_CLIENT_SECRET, then restart the bridge."
        )
    key = security.session_key(request)
    assert key is not None  # an admin session always has an id
    url = await connect.begin(ctx.engine, ctx.box(), ctx.oauth(), key)
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


async def oauth_callback(request: Request) -> Response:
    if not security.is_admin(request):
        security.flash(request, "Your admin session ended before Whop answered. Log in and click Connect Whop again.")
        return RedirectResponse("/login", status_code=303, headers=NO_STORE)
    ctx = _ctx(request)
    if not ctx.settings.whop_client_id:
        return message_page(request, "Connect Whop is not set up", "Set WHOP_CLIENT_ID and WHOP_CLIENT_SECRET.")
    q = request.query_params
    try:
        claimed = await connect.claim_state(ctx.engine, ctx.box(), q.get("state"), security.session_key(request))
        error = q.get("error")
        if error:
            if error == "access_denied":
                raise connect.ConnectError(
                    "Access denied",
                    "You chose Deny on Whop, so the bridge was not connected. Nothing was stored.",
                )
            code_word = error if _ERROR_CODE.match(error) else "an error"
            raise connect.ConnectError("Whop did not connect", f"Whop answered {code_word}. Nothing was stored.")
        code = q.get("code")
        if not code or len(code) > 2048:
            raise connect.ConnectError("Invalid sign-in response", "Whop's answer carries no code. Nothing was stored.")
        oauth = ctx.oauth()
        grant = await connect.redeem(oauth, claimed, code)
        if len(grant.accounts) == 1:
            return await _finish_connect(request, oauth, grant, grant.accounts[0][0])
        request.session["pick"] = connect.pack_choice(ctx.settings.fernet, grant)
        return render(request, "choose_company.html", {"accounts": grant.accounts})
    except connect.ConnectError as exc:
        return message_page(request, exc.title, exc.message, exc.status)


@checked_post(admin=True)
async def choose_company(request: Request, form: FormData) -> Response:
    ctx = _ctx(request)
    blob = request.session.pop("pick", None)
    try:
        if not isinstance(blob, str):
            raise connect.ConnectError(
                "No pending choice", "There is no company choice waiting. Start again with Connect Whop."
            )
        company_id = form.get("company_id")
        if not isinstance(company_id, str):
            raise connect.ConnectError("No company chosen", "Pick one company. Nothing was stored.")
        oauth = ctx.oauth()
        grant = await connect.unpack_choice(ctx.settings.fernet, oauth, blob)
        return await _finish_connect(request, oauth, grant, company_id)
    except connect.ConnectError as exc:
        return message_page(request, exc.title, exc.message, exc.status)


async def _finish_connect(request: Request, oauth: WhopOAuth, grant: connect.Grant, company_id: str) -> Response:
    ctx = _ctx(request)
    conn = await connect.store_connection(ctx.engine, ctx.box(), oauth, grant, company_id)
    log.info("connected a Whop company by OAuth", extra={"company_id": conn.company_id})
    security.flash(request, f"Connected to {conn.company_title or conn.company_id}", "ok")
    hook = await companies.after_connect(ctx.runtime, conn.company_id)
    if hook.error:
        security.flash(request, hook.error, "warn")
    if not (ctx.settings.twenty_url and ctx.settings.twenty_api_key):
        security.flash(request, "Set TWENTY_URL and TWENTY_API_KEY, then use Provision and Full resync.", "warn")
    else:
        try:
            await ctx.jobs.connect(conn.company_id)
        except Busy as exc:
            security.flash(request, f"{exc}; start a full resync when it ends.", "warn")
    return RedirectResponse("/", status_code=303, headers=NO_STORE)


@checked_post(admin=True)
async def disconnect(request: Request, form: FormData) -> Response:
    ctx = _ctx(request)
    rows = await connections.list_connections(ctx.engine)
    wanted = form.get("company_id")
    live = [c for c in rows if c.status != connections.STATUS_DISCONNECTED]
    # Without a company named, only a lone connection may be meant (the one-company page).
    targets = [c for c in live if c.company_id == wanted] if wanted else (live if len(live) == 1 else [])
    if not targets:
        text = "Name the Whop company to disconnect." if live else "No Whop company is connected."
        security.flash(request, text, "warn")
        return RedirectResponse("/", status_code=303)
    for conn in targets:
        await companies.disconnect(ctx.runtime, conn.company_id)
        security.flash(
            request,
            f"Disconnected from {conn.company_title or conn.company_id}. Its tokens and webhook were deleted; "
            "the data already in Twenty stays.",
            "ok",
        )
    return RedirectResponse("/", status_code=303)


# Jobs ----------------------------------------------------------------------------------------------------


def _twenty_missing(request: Request) -> Response | None:
    settings = _ctx(request).settings
    if settings.twenty_url and settings.twenty_api_key:
        return None
    security.flash(request, "Set TWENTY_URL and TWENTY_API_KEY first.", "warn")
    return RedirectResponse("/", status_code=303)


@checked_post(admin=True)
async def provision(request: Request, form: FormData) -> Response:
    if (missing := _twenty_missing(request)) is not None:
        return missing
    try:
        await _ctx(request).jobs.provision()
    except Busy as exc:
        security.flash(request, str(exc), "warn")
    return RedirectResponse("/", status_code=303)


@checked_post(admin=True)
async def sync(request: Request, form: FormData) -> Response:
    asked = form.get("kind")
    if asked not in ("reconcile", "full"):
        return message_page(request, "Unknown sync", "Choose Sync now or Full resync.", 400)
    kind: RunKind = "full" if asked == "full" else "reconcile"
    if (missing := _twenty_missing(request)) is not None:
        return missing
    ctx = _ctx(request)
    if (await views.connection_view(ctx.settings, ctx.engine))[0] is None:
        # A job would only fail, and name the settings of headless mode to someone using OAuth.
        security.flash(request, "Connect Whop first: a sync reads your Whop company.", "warn")
        return RedirectResponse("/", status_code=303)
    try:
        await _ctx(request).jobs.sync(kind)
    except Busy as exc:
        security.flash(request, str(exc), "warn")
    return RedirectResponse("/", status_code=303)


# Webhooks -----------------------------------------------------------------------------------------------------


async def _connected_company(request: Request, form: FormData) -> connections.Connection | None:
    wanted = form.get("company_id")
    row = await connections.get_connection(_ctx(request).engine, wanted) if isinstance(wanted, str) else None
    if row is None or row.status == connections.STATUS_DISCONNECTED:
        security.flash(request, "That Whop company is not connected.", "warn")
        return None
    return row


@checked_post(admin=True)
async def webhook_enable(request: Request, form: FormData) -> Response:
    """Re-enable a company's webhook Whop disabled, and replay what it missed."""
    row = await _connected_company(request, form)
    if row is not None:
        try:
            state = await registration.enable(_ctx(request).runtime, row.company_id)
            security.flash(request, f"Webhook of {row.company_title or row.company_id}: {state.summary}", "ok")
        except BridgeError as exc:
            security.flash(request, f"Could not re-enable the webhook: {exc}", "warn")
    return RedirectResponse("/#companies", status_code=303)


@checked_post(admin=True)
async def webhook_recover(request: Request, form: FormData) -> Response:
    """Ask Whop to send again what the bridge missed since its last stored delivery."""
    row = await _connected_company(request, form)
    if row is not None:
        try:
            since = await registration.recover(_ctx(request).runtime, row.company_id, force=True)
        except BridgeError as exc:
            security.flash(request, f"Could not ask Whop to replay: {exc}", "warn")
        else:
            text = (
                f"Whop is sending again the deliveries since {since:%Y-%m-%d %H:%M} UTC."
                if since
                else "The bridge has no webhook registered for this company; nothing to replay."
            )
            security.flash(request, text, "ok" if since else "warn")
    return RedirectResponse("/#companies", status_code=303)


@checked_post(admin=True)
async def webhooks_replay(request: Request, form: FormData) -> Response:
    """Queue failed or dead-lettered deliveries again: one (`webhook_id`) or all of them."""
    from bridge.store import inbox

    ctx = _ctx(request)
    webhook_id = str(form.get("webhook_id") or "")
    queued = await inbox.replay(ctx.engine, [webhook_id] if webhook_id else None, failed_only=not webhook_id)
    if ctx.background is not None:
        ctx.background.wake()
    security.flash(request, f"Queued {queued} webhook deliver{'y' if queued == 1 else 'ies'} again.", "ok")
    return RedirectResponse("/#deliveries", status_code=303)


async def whop_webhook(request: Request) -> Response:
    """Signed by Whop (no session, no CSRF): handed to bridge.webhooks.WebhookReceiver."""
    return await _ctx(request).receiver.handle(request)


def _make_receiver(ctx: WebContext) -> WebhookReceiver:
    def wake_worker() -> None:
        if ctx.background is not None:
            ctx.background.wake()

    # A callable, so a rotated WHOP_WEBHOOK_SECRET takes effect from the settings object.
    return WebhookReceiver(
        ctx.engine,
        lambda: ctx.settings.webhook_secrets,
        on_stored=wake_worker,
        company_secrets=ctx.runtime.webhook_secrets,
        max_body=ctx.settings.max_body_bytes,
    )


# Security headers ---------------------------------------------------------------------------------------------


class SecurityHeaders:
    """CSP and friends on every response. `form-action` must allow Whop: Chrome applies it to
    the redirect that follows the Connect Whop form."""

    def __init__(self, app: ASGIApp, whop_origin: str) -> None:
        self.app = app
        self.csp = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"form-action 'self' {whop_origin}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", self.csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    # The callback URL carries the code and state: never leak it in a Referer.
                    (b"referrer-policy", b"no-referrer"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class StrictTransportSecurity:
    """`Strict-Transport-Security` on every response of a bridge published over https, so a
    browser never again sends the admin cookie or password in clear to this host. Left off on
    plain http, where browsers ignore it anyway and a local trial has no https to move to."""

    HEADER = (b"strict-transport-security", b"max-age=31536000")  # a year; subdomains are not ours to bind

    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app = app
        self.enabled = public_url.startswith("https://")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled:
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.HEADER]
            await send(message)

        await self.app(scope, receive, send_with_hsts)


class AccessLogScrubber(logging.Filter):
    """Drops query strings from uvicorn's access log lines: the OAuth callback's carries a code."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            path = record.args[2]
            if "?" in path:
                args = list(record.args)
                args[2] = path.split("?", 1)[0] + "?[redacted]"
                record.args = tuple(args)
        return True


# The app -------------------------------------------------------------------------------------------------------


def routes() -> list[BaseRoute]:
    return [
        Route("/", admin_home, methods=["GET"], name="admin"),
        Route("/login", login_page, methods=["GET"], name="login"),
        Route("/login", login_submit, methods=["POST"], name="login_submit"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/sessions/logout-all", logout_all, methods=["POST"], name="logout_all"),
        Route("/connect", connect_start, methods=["POST"], name="connect"),
        Route("/oauth/callback", oauth_callback, methods=["GET"], name="oauth_callback"),
        Route("/oauth/choose", choose_company, methods=["POST"], name="choose_company"),
        Route("/disconnect", disconnect, methods=["POST"], name="disconnect"),
        Route("/provision", provision, methods=["POST"], name="provision"),
        Route("/sync", sync, methods=["POST"], name="sync"),
        Route("/api/status", api_status, methods=["GET"], name="api_status"),
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route("/webhooks/whop", whop_webhook, methods=["POST"], name="whop_webhook"),
        Route("/webhooks/replay", webhooks_replay, methods=["POST"], name="webhooks_replay"),
        Route("/webhooks/enable", webhook_enable, methods=["POST"], name="webhook_enable"),
        Route("/webhooks/recover", webhook_recover, methods=["POST"], name="webhook_recover"),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(runtime: Runtime, *, background: bool = True, run_workers: bool | None = None) -> Starlette:
    """The ASGI app over the process's runtime.

    `background`: admin jobs run as tasks (False: a submit runs the job before answering, for
    tests). `run_workers`: the inbox worker and the scheduler run in this process too (`serve
    --role all`); False for `--role web`, whose deliveries a separate worker process applies.
    """
    settings = runtime.settings
    run_workers = background if run_workers is None else run_workers
    ctx = WebContext(
        runtime=runtime,
        templates=_templates(),
        jobs=JobRunner(runtime, background=background),
        throttle=security.LoginThrottle(lambda: runtime.store),
        sessions=security.AdminSessions(lambda: runtime.store, settings),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.prepare()
        if run_workers:
            ctx.background = Background(runtime)
            await ctx.background.start()
        try:
            yield
        finally:
            if ctx.background is not None:
                await ctx.background.stop()
            await ctx.jobs.aclose()
            await runtime.aclose()

    middleware = [
        Middleware(StrictTransportSecurity, public_url=settings.bridge_public_url),
        Middleware(security.ForwardedFor, trusted=settings.trusted_networks),
        Middleware(SecurityHeaders, whop_origin=security.origin_of(settings.whop_api_url)),
        Middleware(
            SessionMiddleware,
            secret_key=security.session_secret(settings),
            session_cookie=security.SESSION_COOKIE,
            max_age=settings.session_max_hours * 3600,  # the store ends the session; the cookie follows
            same_site="lax",
            https_only=settings.bridge_public_url.startswith("https://"),
        ),
        Middleware(security.SessionCheck, sessions=ctx.sessions),
    ]
    all_routes = [*routes(), *ops.routes(runtime)]
    app = Starlette(routes=all_routes, middleware=middleware, lifespan=lifespan, exception_handlers=ERROR_PAGES)
    app.state.ctx = ctx
    app.state.runs_workers = run_workers
    return app


def create_worker_app(runtime: Runtime) -> Starlette:
    """`serve --role worker`: the inbox worker and the scheduler, with only the health routes.

    The worker polls the inbox more often than `all` does: the web process that stored a
    delivery cannot wake it directly.
    """
    background = Background(runtime, poll_interval=WORKER_POLL_SECONDS)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.prepare()
        await background.start()
        try:
            yield
        finally:
            await background.stop()
            await runtime.aclose()

    app = Starlette(routes=[Route("/healthz", healthz), *ops.routes(runtime)], lifespan=lifespan)
    app.state.runs_workers = True
    return app
