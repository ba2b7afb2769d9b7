"""`FakeWhop`: the store + OAuth + REST API + webhooks as one ASGI app, with test controls.

In-process: `httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="http://whop.test")`.
On loopback: `with fake.serve() as url: ...` (uvicorn in a thread) or `python -m fakes.whop`.
Company webhooks (`fake.add_webhook`, `fake.emit`, replay, health) are described in `webhooks.py`;
`deliver()`/`redeliver()` below stay for one-off deliveries to an explicit URL and secret.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from fakes.whop import shapes, signer
from fakes.whop._util import TimeInput, iso, to_ms
from fakes.whop.api import RestApi
from fakes.whop.oauth import OAuthConfig, OAuthProvider
from fakes.whop.stats import FakeWhopStats, RecordedRequest
from fakes.whop.store import (
    Company,
    Invoice,
    Member,
    Membership,
    Payment,
    Plan,
    Product,
    Record,
    Review,
    User,
    WaitlistEntry,
    WhopStore,
)
from fakes.whop.webhook_api import WebhookRoutes, delivery_json, webhook_json
from fakes.whop.webhooks import PERMISSION, Webhook, WebhookDelivery, WebhookHub

_DEFAULT: Any = object()


@dataclass
class _Injection:
    status: int
    remaining: int
    retry_after: float | None
    path_prefix: str | None


@dataclass
class DeliveryRecord:
    """One webhook delivery the fake made (kept so a test can redeliver it)."""

    url: str
    envelope: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    status_code: int
    secret: str


def _retry_after_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class FakeWhop(WhopStore):
    """A faithful stand-in for api.whop.com (REST `/api/v1`, `/oauth/*`) and its webhooks."""

    def __init__(
        self,
        *,
        api_key: str | None = "whop-test-key",
        client_id: str = "app_test",
        client_secret: str = "whop-client-secret",  # noqa: S107 - a test credential, not a secret
        redirect_uris: Sequence[str] = ("http://127.0.0.1:8000/oauth/callback",),
        access_token_ttl: float = 3600,
        clock: Callable[[], float] = time.time,
        app_name: str = "Whop Twenty Bridge",
        refresh_token_ttl: float | None = None,
        code_ttl: float = 300,
        require_client_secret: bool = False,
        enforce_scopes: bool = False,
        rate_limit_per_minute: int | None = None,
        latency: float = 0.0,
        id_seed: str = "fake-whop",
        control_endpoints: bool = True,
    ) -> None:
        super().__init__(clock=clock, api_key=api_key, id_seed=id_seed)
        self.stats = FakeWhopStats()
        self.oauth = OAuthProvider(
            self,
            self.stats,
            OAuthConfig(
                client_id=client_id,
                client_secret=client_secret,
                redirect_uris=list(redirect_uris),
                access_token_ttl=access_token_ttl,
                refresh_token_ttl=refresh_token_ttl,
                code_ttl=code_ttl,
                app_name=app_name,
                require_client_secret=require_client_secret,
            ),
        )
        self.hooks = WebhookHub(self)
        self.api = RestApi(
            self, self.oauth, enforce_scopes=enforce_scopes, handlers={"webhooks": WebhookRoutes(self.hooks).handle}
        )
        self.latency = latency  # seconds added to every /api/v1 call (benchmarks)
        self.rate_limit_per_minute = rate_limit_per_minute  # per credential; None = unlimited
        self.deliveries: list[DeliveryRecord] = []
        self._injections: list[_Injection] = []
        self._windows: dict[str, tuple[int, int]] = {}
        routes = [
            Route("/", self._summary_endpoint),
            Route("/oauth/authorize", self.oauth.authorize, methods=["GET"]),
            Route("/oauth/authorize/decision", self.oauth.decision, methods=["POST"]),
            Route("/oauth/token", self.oauth.token, methods=["POST"]),
            Route("/oauth/userinfo", self.oauth.userinfo, methods=["GET", "POST"]),
            Route("/oauth/revoke", self.oauth.revoke, methods=["POST"]),
            Route("/.well-known/openid-configuration", self.oauth.discovery),
            Route("/.well-known/jwks.json", self.oauth.jwks_endpoint),
            Route("/api/v1/{rest:path}", self.api.handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
        if control_endpoints:
            routes += [
                Route("/_fake", self._summary_endpoint),
                Route("/_fake/stats", self._stats_endpoint),
                Route("/_fake/inject", self._inject_endpoint, methods=["POST"]),
                Route("/_fake/expire_tokens", self._expire_endpoint, methods=["POST"]),
                Route("/_fake/memberships/{mem_id}", self._membership_endpoint, methods=["POST", "DELETE"]),
                Route("/_fake/deliver", self._deliver_endpoint, methods=["POST"]),
                Route("/_fake/emit", self._emit_endpoint, methods=["POST"]),
                Route("/_fake/webhooks", self._webhooks_endpoint, methods=["GET"]),
                Route("/_fake/webhooks/retries", self._retries_endpoint, methods=["POST"]),
                Route("/_fake/webhooks/{hook_id}/disable", self._disable_endpoint, methods=["POST"]),
                Route("/_fake/companies/{company_id}/permissions", self._permissions_endpoint, methods=["POST"]),
            ]
        self.app = Starlette(routes=routes)

    # ---- configuration shortcuts ------------------------------------------------------------
    @property
    def client_id(self) -> str:
        return self.oauth.config.client_id

    @property
    def client_secret(self) -> str:
        return self.oauth.config.client_secret

    @property
    def redirect_uris(self) -> list[str]:
        return self.oauth.config.redirect_uris

    @property
    def consent_user_id(self) -> str:
        """The user who approves on the consent page (default: the seeded owner)."""
        return self.oauth.consent_user_id

    @consent_user_id.setter
    def consent_user_id(self, user_id: str) -> None:
        self.oauth.consent_user_id = user_id

    def expire_access_tokens(self) -> None:
        self.oauth.expire_access_tokens()

    def api_key_for(self, company_id: str) -> str:
        key = self.companies[company_id].api_key
        assert key is not None
        return key

    def render(self, obj: str | Record, *, legacy: bool = False) -> dict[str, Any]:
        """The native (or legacy) JSON of a stored object, as the API would return it."""
        record = self.get(obj) if isinstance(obj, str) else obj
        return shapes.render(self, record, legacy=legacy)

    # ---- ASGI -------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_fake"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        is_api = path.startswith("/api/v1")
        self._record(scope, is_api)

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stats.responses[message["status"]] += 1
                if message["status"] == 429:
                    self.stats.served_429 += 1
            await send(message)

        early = self._injected(path, is_api) or (self._rate_limited(scope) if is_api else None)
        if early is not None:
            await early(scope, receive, counting_send)
            return
        if is_api and self.latency:
            await anyio.sleep(self.latency)
        await self.app(scope, receive, counting_send)

    def _record(self, scope: Scope, is_api: bool) -> None:
        self.stats.calls_per_path[scope["path"]] += 1
        if is_api:
            self.stats.api_calls += 1
        self.stats.requests.append(
            RecordedRequest(
                method=scope["method"],
                path=scope["path"],
                query=tuple(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
                headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            )
        )

    # ---- failure injection and rate limiting ----------------------------------------------------
    def inject(
        self,
        status: int = 429,
        count: int = 1,
        retry_after: float | None = _DEFAULT,
        path_prefix: str | None = None,
    ) -> None:
        """The next `count` matching calls answer `status` instead of doing their work.

        Matching calls are `/api/v1/*` by default, or any path starting with `path_prefix`
        (e.g. "/api/v1/members", "/oauth/token"). `Retry-After` (seconds) is sent when
        `retry_after` is not None; by default 1 s on 429 and 503, none otherwise. 502/503/504
        answer an HTML page, as a gateway would; the rest answer Whop's JSON error envelope.
        Several calls queue up in order.
        """
        if retry_after is _DEFAULT:
            retry_after = 1.0 if status in (429, 503) else None
        with self.lock:
            self._injections.append(_Injection(status, count, retry_after, path_prefix))

    def clear_injections(self) -> None:
        with self.lock:
            self._injections.clear()

    def _injected(self, path: str, is_api: bool) -> Response | None:
        with self.lock:
            for rule in self._injections:
                matches = path.startswith(rule.path_prefix) if rule.path_prefix else is_api
                if matches and rule.remaining > 0:
                    rule.remaining -= 1
                    break
            else:
                return None
            self._injections = [r for r in self._injections if r.remaining > 0]
        if rule.status >= 500:
            self.stats.served_5xx_injected += 1
        headers = {"Retry-After": _retry_after_text(rule.retry_after)} if rule.retry_after is not None else {}
        return self._error_response(rule.status, path, headers)

    @staticmethod
    def _error_response(status: int, path: str, headers: dict[str, str]) -> Response:
        if status in (502, 503, 504):
            reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
            page = f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
            return HTMLResponse(page, status_code=status, headers=headers)
        if path.startswith("/oauth"):
            error = "rate_limit_exceeded" if status == 429 else "server_error"
            body: dict[str, Any] = {"error": error, "error_description": f"injected {status}"}
        else:
            kind = {
                429: ("rate_limit_exceeded", "You are being rate limited"),
                500: ("internal_server_error", "Something went wrong"),
                401: ("unauthorized", "Invalid API key or access token"),
                403: ("forbidden", "Forbidden"),
                409: ("conflict", "Conflict"),
            }.get(status, ("error", f"injected {status}"))
            body = {"error": {"type": kind[0], "message": kind[1]}}
        return JSONResponse(body, status_code=status, headers=headers)

    def _rate_limited(self, scope: Scope) -> Response | None:
        limit = self.rate_limit_per_minute
        if not limit:
            return None
        credential = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"authorization"), "")
        now = self.now_ms()
        window = now - now % 60_000
        with self.lock:
            start, used = self._windows.get(credential, (window, 0))
            if start != window:
                start, used = window, 0
            if used >= limit:
                wait = math.ceil((start + 60_000 - now) / 1000)
                return self._error_response(429, scope["path"], {"Retry-After": str(max(1, wait))})
            self._windows[credential] = (start, used + 1)
        return None

    # ---- webhooks -----------------------------------------------------------------------------
    def _company_of(self, record: Record) -> str | None:
        if isinstance(record, Company):
            return record.id
        return getattr(record, "company_id", None)

    @staticmethod
    def _company_in_payload(payload: Any) -> str | None:
        if not isinstance(payload, dict):
            return None
        for key in ("account_id", "company_id"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
        for key in ("account", "company"):
            nested = payload.get(key)
            if isinstance(nested, dict) and isinstance(nested.get("id"), str):
                return str(nested["id"])
        return None

    def event(
        self,
        type: str,
        data: Any,
        company_id: str | None = None,
        *,
        webhook_id: str | None = None,
        timestamp: TimeInput = None,
        legacy: bool = False,
        previous_attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A webhook envelope (§4.2): native by default, the legacy v1 one with `legacy=True`.

        `data` is a stored object (its id or record, rendered in the matching family), a
        ready dict (used verbatim), or None (Whop's test deliveries carry `data: null`).
        """
        if isinstance(data, str):
            data = self.get(data)
        if isinstance(
            data, User | Company | Product | Plan | Member | Membership | Payment | Invoice | WaitlistEntry | Review
        ):
            company_id = company_id or self._company_of(data)
            payload: Any = shapes.render_event(self, data, legacy=legacy)
        else:
            company_id = company_id or self._company_in_payload(data)
            payload = data
        if company_id is None:
            raise ValueError("company_id is required when the data does not name its company")
        when = iso(to_ms(timestamp if timestamp is not None else self.clock()))
        wid = webhook_id or self.ids.new("msg_", 24)
        if legacy:
            return {
                "id": wid,
                "api_version": "v1",
                "timestamp": when,
                "type": type,
                "company_id": company_id,
                "data": payload,
            }
        envelope: dict[str, Any] = {
            "id": wid,
            "api_version": "v1",
            "api_version_date": shapes.NATIVE_VERSION,
            "timestamp": when,
            "type": type,
            "account_id": company_id,
            "data": payload,
        }
        if previous_attributes is not None:
            envelope["previous_attributes"] = previous_attributes
        return envelope

    async def deliver(
        self,
        url: str,
        event_type: str,
        data: Any,
        secret: str,
        *,
        webhook_id: str | None = None,
        timestamp: int | None = None,
        client: httpx.AsyncClient | None = None,
        company_id: str | None = None,
        legacy: bool = False,
        previous_attributes: dict[str, Any] | None = None,
        extra_signatures: Iterable[str] = (),
    ) -> httpx.Response:
        """POST a signed Standard-Webhooks delivery of an event to `url` (e.g. a running bridge).

        The `webhook-timestamp` comes from the fake's clock unless given; pass `client` to
        reach an in-process app (`httpx.ASGITransport`).
        """
        ts = int(self.clock()) if timestamp is None else int(timestamp)
        envelope = self.event(
            event_type,
            data,
            company_id,
            webhook_id=webhook_id,
            timestamp=ts,
            legacy=legacy,
            previous_attributes=previous_attributes,
        )
        body, headers = signer.delivery(secret, envelope, timestamp=ts, extra_signatures=extra_signatures)
        return await self._post(url, envelope, body, headers, secret, client)

    async def redeliver(
        self, record: DeliveryRecord, *, client: httpx.AsyncClient | None = None, timestamp: int | None = None
    ) -> httpx.Response:
        """Send a delivery again: same `webhook-id` and body, freshly signed (at-least-once)."""
        ts = int(self.clock()) if timestamp is None else int(timestamp)
        headers = signer.signed_headers(
            record.secret, record.body, webhook_id=record.headers["webhook-id"], timestamp=ts
        )
        return await self._post(record.url, record.envelope, record.body, headers, record.secret, client)

    async def _post(
        self,
        url: str,
        envelope: dict[str, Any],
        body: bytes,
        headers: dict[str, str],
        secret: str,
        client: httpx.AsyncClient | None,
    ) -> httpx.Response:
        headers = {**headers, "user-agent": "Whop-Webhooks/1.0 (fake)"}
        if client is None:
            async with httpx.AsyncClient(timeout=10.0) as own:
                response = await own.post(url, content=body, headers=headers)
        else:
            response = await client.post(url, content=body, headers=headers)
        self.deliveries.append(DeliveryRecord(url, envelope, body, headers, response.status_code, secret))
        return response

    # ---- company webhooks (the full API is `self.hooks`, see webhooks.py) ------------------------
    @property
    def webhook_client(self) -> httpx.AsyncClient | None:
        """The client webhook sends use (e.g. over `httpx.ASGITransport`); None: loopback."""
        return self.hooks.client

    @webhook_client.setter
    def webhook_client(self, client: httpx.AsyncClient | None) -> None:
        self.hooks.client = client

    def add_webhook(
        self,
        company_id: str,
        url: str,
        events: Iterable[str],
        *,
        api_version_date: str | None = shapes.NATIVE_VERSION,
        enabled: bool = True,
    ) -> Webhook:
        """A webhook as POST /webhooks would make it (pinned by default); `.secret` is its secret."""
        return self.hooks.add(company_id, url, events, api_version_date=api_version_date, enabled=enabled)

    def webhooks_of(self, company_id: str) -> list[Webhook]:
        return self.hooks.of(company_id)

    def webhook(self, hook_id: str) -> Webhook:
        return self.hooks.get(hook_id)

    def webhook_deliveries(self, hook_id: str) -> list[WebhookDelivery]:
        """Every retained attempt to the webhook, oldest first."""
        return self.hooks.deliveries(hook_id)

    def disable_webhook(self, hook_id: str, reason: str = "delivery_failures") -> Webhook:
        return self.hooks.disable(hook_id, reason)

    async def emit(
        self,
        company_id: str,
        event_type: str,
        data: Any = None,
        *,
        client: httpx.AsyncClient | None = None,
        previous_attributes: dict[str, Any] | None = None,
    ) -> list[WebhookDelivery]:
        """Send an event of `company_id` to its subscribed webhooks; one delivery per webhook."""
        return await self.hooks.emit(
            company_id, event_type, data, client=client, previous_attributes=previous_attributes
        )

    async def run_webhook_retries(
        self, *, until_done: bool = False, client: httpx.AsyncClient | None = None
    ) -> list[WebhookDelivery]:
        return await self.hooks.run_retries(until_done=until_done, client=client)

    def deny_key_permission(self, company_id: str, permission: str = PERMISSION) -> None:
        """The company's API key loses `permission` (keys have every permission by default)."""
        with self.lock:
            self.companies[company_id].denied_permissions.add(permission)

    def allow_key_permission(self, company_id: str, permission: str = PERMISSION) -> None:
        with self.lock:
            self.companies[company_id].denied_permissions.discard(permission)

    # ---- loopback serving -----------------------------------------------------------------------
    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Run the fake on uvicorn in a background thread; yields its base URL."""
        import uvicorn

        config = uvicorn.Config(self, host=host, port=port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="fake-whop", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake Whop did not start")
            time.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://{host}:{bound}"
        finally:
            server.should_exit = True
            thread.join(10)

    # ---- control endpoints (for a fake running in another process) -----------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "fake": "whop",
            "api_version_date": shapes.NATIVE_VERSION,
            "client_id": self.client_id,
            "redirect_uris": self.redirect_uris,
            "consent_user_id": self.consent_user_id,
            "companies": [
                {
                    "id": c.id,
                    "title": c.title,
                    "api_key": c.api_key,
                    "owner_user_id": c.owner_user_id,
                    "members": sum(1 for m in self.members.values() if m.company_id == c.id),
                    "memberships": sum(1 for m in self.memberships.values() if m.company_id == c.id),
                    "products": sum(1 for p in self.products.values() if p.company_id == c.id),
                    "webhooks": len(self.hooks.of(c.id)),
                }
                for c in self.companies.values()
            ],
        }

    async def _summary_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.summary())

    async def _stats_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.stats.as_dict())

    async def _inject_endpoint(self, request: Request) -> Response:
        body = await request.json()
        self.inject(
            status=int(body.get("status", 429)),
            count=int(body.get("count", 1)),
            retry_after=body.get("retry_after", _DEFAULT),
            path_prefix=body.get("path_prefix"),
        )
        return JSONResponse({"ok": True})

    async def _expire_endpoint(self, request: Request) -> Response:
        self.expire_access_tokens()
        return JSONResponse({"ok": True})

    async def _membership_endpoint(self, request: Request) -> Response:
        mem_id = request.path_params["mem_id"]
        if mem_id not in self.memberships:
            return JSONResponse({"error": "unknown membership"}, status_code=404)
        if request.method == "DELETE":
            self.delete_membership(mem_id)
            return JSONResponse({"deleted": mem_id})
        try:
            record = self.update_membership(mem_id, **(await request.json()))
        except TypeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(shapes.render(self, record))

    async def _deliver_endpoint(self, request: Request) -> Response:
        body = await request.json()
        data = body.get("object_id", body.get("data"))
        response = await self.deliver(
            body["url"],
            body["type"],
            data,
            body["secret"],
            company_id=body.get("company_id"),
            legacy=bool(body.get("legacy", False)),
        )
        return JSONResponse({"status_code": response.status_code, "body": response.text[:2000]})

    async def _emit_endpoint(self, request: Request) -> Response:
        body = await request.json()
        try:
            sent = await self.emit(
                body["company_id"],
                body["type"],
                body.get("object_id", body.get("data")),
                previous_attributes=body.get("previous_attributes"),
            )
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": f"cannot emit: {exc}"}, status_code=400)
        return JSONResponse(
            {"deliveries": [{"webhook_id": d.hook_id, "error": d.error, **delivery_json(d)} for d in sent]}
        )

    async def _webhooks_endpoint(self, request: Request) -> Response:
        # Unlike the API, the control view shows secrets: a test in another process needs them.
        hooks = sorted(self.hooks.hooks.values(), key=lambda h: h.seq)
        return JSONResponse({"data": [webhook_json(h, secret=True) for h in hooks]})

    async def _retries_endpoint(self, request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        sent = await self.run_webhook_retries(until_done=bool(body.get("until_done", False)))
        return JSONResponse({"deliveries": [{"webhook_id": d.hook_id, **delivery_json(d)} for d in sent]})

    async def _disable_endpoint(self, request: Request) -> Response:
        hook_id = request.path_params["hook_id"]
        if hook_id not in self.hooks.hooks:
            return JSONResponse({"error": "unknown webhook"}, status_code=404)
        body = await request.json() if await request.body() else {}
        hook = self.disable_webhook(hook_id, body.get("reason", "delivery_failures"))
        return JSONResponse(webhook_json(hook))

    async def _permissions_endpoint(self, request: Request) -> Response:
        company_id = request.path_params["company_id"]
        if company_id not in self.companies:
            return JSONResponse({"error": "unknown company"}, status_code=404)
        body = await request.json()
        for permission in body.get("deny", []):
            self.deny_key_permission(company_id, permission)
        for permission in body.get("allow", []):
            self.allow_key_permission(company_id, permission)
        return JSONResponse({"denied": sorted(self.companies[company_id].denied_permissions)})


__all__ = ["DeliveryRecord", "FakeWhop"]
