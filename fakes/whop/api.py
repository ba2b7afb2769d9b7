"""`/api/v1`: the REST surface the bridge reads (fact sheet §2).

Traps kept on purpose, because the real API has them:
- `GET /products` without `account_id` is a public marketplace search across every company;
- with a user (OAuth) token, `/memberships`, `/payments` and `/plans` without `account_id`
  return everything the user can read across all their companies;
- no `Api-Version-Date` header means the legacy 2025-01-01 shapes, an unknown date is a 400.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fakes.whop import shapes
from fakes.whop._util import to_ms
from fakes.whop.oauth import OAuthProvider
from fakes.whop.store import ACCESS_STATUSES, MEMBERSHIP_STATUSES, WhopStore

NATIVE = shapes.NATIVE_VERSION
SUPPORTED_VERSIONS = (shapes.LEGACY_VERSION, NATIVE)
MAX_PAGE = 100
DEFAULT_PAGE = 10
_PAGING = frozenset({"first", "after", "last", "before", "order", "direction"})

# order= values each list accepts (PY26 + PY040 lists), mapped to record attributes.
ORDERS: dict[str, dict[str, str]] = {
    "memberships": {
        "created_at": "created_at",
        "id": "id",
        "status": "status",
        "canceled_at": "canceled_at",
        "date_joined": "joined_at",
    },
    "members": {
        "created_at": "created_at",
        "id": "id",
        "joined_at": "joined_at",
        "last_accessed_at": "last_accessed_at",
        "most_recent_action_at": "most_recent_action_at",
        "most_recent_action": "most_recent_action",
        "usd_total_spent": "usd_total_spent",
    },
    "payments": {"created_at": "created_at", "id": "id", "paid_at": "paid_at"},
    "products": {"created_at": "created_at", "id": "id"},
    "plans": {"created_at": "created_at", "id": "id"},
    "accounts": {"created_at": "created_at", "id": "id"},
    "invoices": {"created_at": "created_at", "id": "id", "due_date": "due_date"},
    "waitlist_entries": {"created_at": "created_at"},
    "reviews": {"created_at": "created_at", "stars": "stars"},
    "people": {
        "first_seen_at": "first_seen_at",
        "last_seen_at": "last_seen_at",
        "first_purchase_at": "first_purchase_at",
        "created_at": "first_seen_at",
    },
    "promo_codes": {"created_at": "created_at", "id": "id"},
}
# Lists whose `direction` defaults to descending (the SDK's docstrings say so).
NEWEST_FIRST = frozenset({"waitlist_entries"})
# OAuth permission needed per list when scopes are enforced (PY040 "Required permissions").
PERMISSIONS = {
    "memberships": "member:basic:read",
    "members": "member:basic:read",
    "payments": "payment:basic:read",
    "products": "access_pass:basic:read",
    "plans": "plan:basic:read",
    "invoices": "invoice:basic:read",
    "waitlist_entries": "plan:waitlist:read",
    "reviews": "review:basic:read",  # a guess: the SDK names no permission for reading reviews
    "people": "people:read",  # a guess, likewise
    "promo_codes": "promo_code:basic:read",
}
INVOICE_STATUSES = ("draft", "open", "paid", "past_due", "uncollectible", "void")
ENTRY_STATUSES = ("pending", "approved", "denied", "canceled")


@dataclass(frozen=True)
class Credential:
    kind: str  # "api_key" | "oauth"
    company_ids: frozenset[str]  # companies it can read
    default_company_id: str | None  # used when a request names none
    user_id: str | None = None
    scopes: frozenset[str] | None = None  # None: an API key
    denied: frozenset[str] = frozenset()  # permissions switched off for this company's API key

    def allows(self, permission: str) -> bool:
        """An OAuth token has what its grant's scope lists; an API key has everything not denied."""
        if self.scopes is not None:
            return permission in self.scopes
        return permission not in self.denied


class ApiError(Exception):
    def __init__(self, status: int, type_: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.extra = status, type_, message, extra

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(
            {"error": {"type": self.type, "message": self.message, **self.extra}},
            status_code=self.status,
            headers=headers,
        )


def require(cred: Credential, permission: str) -> None:
    """403 in Whop's error shape unless the credential carries `permission`."""
    if not cred.allows(permission):
        what = "API key" if cred.kind == "api_key" else "token"
        raise ApiError(403, "forbidden", f"This {what} lacks the {permission} permission")


def _qlist(params: QueryParams, *names: str) -> list[str]:
    """Repeated keys (PY26 style) plus the `name[]` brackets PY040 sent."""
    out: list[str] = []
    for name in names:
        out += params.getlist(name) + params.getlist(f"{name}[]")
    return [v for v in out if v != ""]


def _time_param(params: QueryParams, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return to_ms(float(raw) if raw.replace(".", "", 1).isdigit() else raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an ISO 8601 timestamp") from None


def page_size(params: QueryParams, name: str) -> int | None:
    """`first` / `last`: 1..MAX_PAGE, or None when absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an integer") from None
    if not 1 <= value <= MAX_PAGE:
        raise ApiError(400, "bad_request", f"{name} must be between 1 and {MAX_PAGE}")
    return value


def encode_cursor(order: str, key: tuple[int, Any, str]) -> str:
    raw = json.dumps([order, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(order: str, cursor: str) -> tuple[int, Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, flag, value, obj_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(400, "bad_request", "invalid cursor") from None
    if name != order or flag not in (0, 1) or not isinstance(obj_id, str):
        raise ApiError(400, "bad_request", "cursor does not belong to this ordering")
    return (flag, value, obj_id)


# A resource served by another module (e.g. webhooks): it gets the request, the caller's
# credential and the path segments, and may use any method.
Handler = Callable[[Request, Credential, list[str]], Awaitable[Any]]


class RestApi:
    def __init__(
        self,
        store: WhopStore,
        oauth: OAuthProvider,
        *,
        enforce_scopes: bool = False,
        handlers: dict[str, Handler] | None = None,
    ) -> None:
        self.store = store
        self.oauth = oauth
        self.enforce_scopes = enforce_scopes
        self.handlers: dict[str, Handler] = dict(handlers or {})  # first path segment → handler
        # (resource, companies, filters, order) → records sorted ascending, and their keys.
        self._cache: dict[tuple[Any, ...], tuple[list[Any], list[tuple[int, Any, str]]]] = {}
        self._cache_version = -1

    # ---- entry point --------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        try:
            cred = self.authenticate(request)
            legacy = self._legacy(request)
            parts = [p for p in request.path_params.get("rest", "").split("/") if p]
            if parts and parts[0] in self.handlers:
                result = await self.handlers[parts[0]](request, cred, parts)
                return result if isinstance(result, Response) else JSONResponse(result)
            if request.method != "GET":
                raise ApiError(405, "method_not_allowed", f"{request.method} is not supported by this fake")
            return JSONResponse(self._route(request, cred, legacy, parts))
        except ApiError as exc:
            return exc.response()

    def authenticate(self, request: Request) -> Credential:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "Missing or malformed Authorization header (expected Bearer)")
        if (company_id := self.store.api_keys.get(token)) is not None:
            denied = frozenset(self.store.companies[company_id].denied_permissions)
            return Credential("api_key", frozenset({company_id}), company_id, denied=denied)
        grant, reason = self.oauth.lookup_access_token(token)
        if grant is None:
            message = "Invalid API key or access token" if reason == "invalid access token" else reason
            raise ApiError(401, "unauthorized", message)
        owned = set(self.store.companies_of_user(grant.user_id))
        if grant.company_id:  # authorize had company_id: the token is limited to it
            owned &= {grant.company_id}
        return Credential("oauth", frozenset(owned), grant.company_id, grant.user_id, grant.scopes)

    @staticmethod
    def _legacy(request: Request) -> bool:
        version = request.headers.get("api-version-date")
        if version is None:
            return True  # frozen pre-versioning behaviour
        if version not in SUPPORTED_VERSIONS:
            raise ApiError(
                400,
                "invalid_api_version",
                f"Unsupported Api-Version-Date {version!r}. Supported versions: {', '.join(SUPPORTED_VERSIONS)}",
                supported_versions=list(SUPPORTED_VERSIONS),
            )
        return version != NATIVE

    def _route(self, request: Request, cred: Credential, legacy: bool, parts: list[str]) -> dict[str, Any]:
        params = request.query_params
        if parts[:1] == ["variants"]:  # the current name of plans; `/plans` is its deprecated alias
            parts = ["plans", *parts[1:]]
        match parts:
            case ["accounts"]:
                companies = [self.store.companies[c] for c in cred.company_ids if c in self.store.companies]
                return self._page(
                    "accounts", params, companies, cred, legacy, cache_key=tuple(sorted(cred.company_ids))
                )
            case ["accounts", "me"]:
                if cred.default_company_id is None:
                    raise ApiError(403, "forbidden", "accounts/me needs an API key or a company-scoped token")
                return shapes.native_account(self.store, self.store.companies[cred.default_company_id])
            case ["accounts", account_id]:
                company = self.store.companies.get(account_id)
                if company is None:
                    raise ApiError(404, "not_found", f"Account {account_id} not found")
                if account_id not in cred.company_ids:
                    raise ApiError(403, "forbidden", f"You do not have access to account {account_id}")
                return shapes.native_account(self.store, company)
            case ["users", "me"]:
                if cred.user_id is None:
                    raise ApiError(403, "forbidden", "users/me needs a user (OAuth) token, not an API key")
                view = shapes.native_user(self.store.users[cred.user_id], include_email=True)
                if cred.scopes is not None and "email" not in cred.scopes:
                    view["email"] = None  # email only with the email scope
                return view
            case ["users", user_id]:
                user = self.store.users.get(user_id)
                if user is None:
                    raise ApiError(404, "not_found", f"User {user_id} not found")
                return shapes.native_user(user, include_email=False)
            case [resource] if resource in PERMISSIONS:
                self._require_permission(cred, resource)
                return self._list(resource, params, cred, legacy)
            case [resource, obj_id] if resource in PERMISSIONS:
                self._require_permission(cred, resource)
                return self._retrieve(resource, obj_id, cred, legacy)
        raise ApiError(404, "not_found", f"No route for /api/v1/{'/'.join(parts)}")

    # ---- permissions and scoping ----------------------------------------------------------
    def _require_permission(self, cred: Credential, resource: str) -> None:
        # OAuth scopes on reads only count with enforce_scopes; a permission denied to an
        # API key on purpose (`FakeWhop.deny_key_permission`) always does.
        if cred.kind == "oauth" and not self.enforce_scopes:
            return
        require(cred, PERMISSIONS[resource])

    def _show_email(self, cred: Credential) -> bool:
        return not (self.enforce_scopes and cred.scopes is not None and "member:email:read" not in cred.scopes)

    def _companies(self, resource: str, params: QueryParams, cred: Credential) -> frozenset[str] | None:
        """The companies a list reads; None means the public marketplace (products)."""
        account_id = params.get("account_id") or params.get("company_id")
        if account_id:
            if account_id not in cred.company_ids:
                raise ApiError(403, "forbidden", f"You do not have access to account {account_id}")
            return frozenset({account_id})
        if resource == "products":
            return None  # no account_id: a marketplace search over every company
        if cred.kind == "api_key":
            assert cred.default_company_id is not None
            return frozenset({cred.default_company_id})
        if resource in ("memberships", "payments", "plans"):
            return cred.company_ids  # everything the user can read, across companies
        if cred.default_company_id:
            return frozenset({cred.default_company_id})
        raise ApiError(400, "bad_request", "account_id is required with a user token")

    # ---- lists ----------------------------------------------------------------------------
    def _list(self, resource: str, params: QueryParams, cred: Credential, legacy: bool) -> dict[str, Any]:
        companies = self._companies(resource, params, cred)
        table: dict[str, Any] = getattr(self.store, resource)
        if companies is None:
            records: Iterable[Any] = (p for p in table.values() if p.visibility == "visible")
        else:
            records = (r for r in table.values() if r.company_id in companies)
        predicates = self._filters(resource, params, cred)
        filters = tuple(sorted((k, v) for k, v in params.multi_items() if k not in _PAGING))
        # The user id is part of the key because `user_id=me` depends on it.
        cache_key = (tuple(sorted(companies)) if companies is not None else None, filters, cred.user_id)
        return self._page(
            resource,
            params,
            (r for r in records if all(p(r) for p in predicates)),
            cred,
            legacy,
            cache_key=cache_key,
        )

    def _page(
        self,
        resource: str,
        params: QueryParams,
        records: Iterable[Any],
        cred: Credential,
        legacy: bool,
        *,
        cache_key: tuple[Any, ...],
    ) -> dict[str, Any]:
        order = params.get("order") or ("first_seen_at" if resource == "people" else "created_at")
        if order not in ORDERS[resource]:
            raise ApiError(400, "bad_request", f"order must be one of {sorted(ORDERS[resource])}")
        direction = params.get("direction") or ("desc" if resource in NEWEST_FIRST else "asc")
        if direction not in ("asc", "desc"):
            raise ApiError(400, "bad_request", "direction must be asc or desc")
        first, last = page_size(params, "first"), page_size(params, "last")
        if first is not None and last is not None:
            raise ApiError(400, "bad_request", "pass either first or last, not both")

        ordered, keys = self._sorted(resource, order, records, cache_key)
        n = len(ordered)
        desc = direction == "desc"
        # Positions in the requested order; keys/ordered are ascending, so desc mirrors them.
        start, end = 0, n
        if after := params.get("after"):
            ck = decode_cursor(order, after)
            start = self._bisect(keys, ck, desc, after=True)
        if before := params.get("before"):
            ck = decode_cursor(order, before)
            end = self._bisect(keys, ck, desc, after=False)
        end = max(start, end)
        if last is not None:
            lo, hi = max(start, end - last), end
        else:
            lo = start
            hi = min(end, start + (first or DEFAULT_PAGE))
        positions = range(lo, hi)
        page = [ordered[n - 1 - i] if desc else ordered[i] for i in positions]
        page_keys = [keys[n - 1 - i] if desc else keys[i] for i in positions]
        show_email = self._show_email(cred)
        if resource == "invoices":  # list items are a subset of what retrieve answers
            data = [shapes.invoice_list_item(self.store, r, show_email=show_email) for r in page]
        elif resource == "reviews":
            data = [shapes.review_list_item(self.store, r) for r in page]
        else:
            data = [shapes.render(self.store, r, legacy=legacy, show_email=show_email) for r in page]
        return {
            "data": data,
            "page_info": {
                "end_cursor": encode_cursor(order, page_keys[-1]) if page_keys else None,
                "start_cursor": encode_cursor(order, page_keys[0]) if page_keys else None,
                "has_next_page": hi < n,
                "has_previous_page": lo > 0,
            },
        }

    @staticmethod
    def _bisect(keys: list[tuple[int, Any, str]], ck: tuple[int, Any, str], desc: bool, *, after: bool) -> int:
        """Position in the requested order just past (after) or just before (before) a cursor."""
        n = len(keys)
        try:
            if not desc:
                return bisect_right(keys, ck) if after else bisect_left(keys, ck)
            return n - bisect_left(keys, ck) if after else n - bisect_right(keys, ck)
        except TypeError:
            raise ApiError(400, "bad_request", "invalid cursor") from None

    def _sort_value(self, record: Any, attr: str) -> Any:
        if attr == "usd_total_spent":
            return int(self.store.member_total_spent(record) * 100)
        return getattr(record, attr)

    def _sorted(
        self, resource: str, order: str, records: Iterable[Any], cache_key: tuple[Any, ...]
    ) -> tuple[list[Any], list[tuple[int, Any, str]]]:
        """Records ascending by (order value, id), cached until the data changes.

        Keyset cursors (value, id) stay valid while records are added or deleted between
        pages, like Whop's opaque cursors; walking the list never repeats or skips a row.
        """
        with self.store.lock:
            if self._cache_version != self.store.version:
                self._cache.clear()
                self._cache_version = self.store.version
            key = (resource, order, cache_key)
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            attr = ORDERS[resource][order]
            decorated = []
            for r in records:
                value = self._sort_value(r, attr)
                decorated.append(((0, value, r.id) if value is not None else (1, 0, r.id), r))
            decorated.sort(key=lambda pair: pair[0])
            result = ([r for _, r in decorated], [k for k, _ in decorated])
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = result
            return result

    # ---- filters ----------------------------------------------------------------------------
    def _filters(self, resource: str, params: QueryParams, cred: Credential) -> list[Callable[[Any], bool]]:
        preds: list[Callable[[Any], bool]] = []
        store = self.store
        idx = store.index()

        def one_of(attr: str, *names: str) -> None:
            values = set(_qlist(params, *names))
            if values:
                preds.append(lambda r: getattr(r, attr) in values)

        after, before = _time_param(params, "created_after"), _time_param(params, "created_before")
        if after is not None:
            preds.append(lambda r: r.created_at > after)
        if before is not None:
            preds.append(lambda r: r.created_at < before)

        if resource == "memberships":
            statuses = set(_qlist(params, "statuses", "status"))
            if bad := statuses - set(MEMBERSHIP_STATUSES):
                raise ApiError(400, "bad_request", f"unknown status {sorted(bad)}; one of {list(MEMBERSHIP_STATUSES)}")
            if statuses:
                preds.append(lambda r: r.status in statuses)
            one_of("product_id", "product_ids", "product_id")
            one_of("plan_id", "plan_ids", "plan_id")
            one_of("member_id", "member_id", "member_ids")
            one_of("promo_code_id", "promo_code_ids")
            one_of("cancel_option", "cancel_options")
            users = set(_qlist(params, "user_ids", "user_id"))
            if "me" in users:
                if cred.user_id is None:
                    raise ApiError(400, "bad_request", "user_id=me needs a user (OAuth) token")
                users = (users - {"me"}) | {cred.user_id}
            if users:
                preds.append(lambda r: r.user_id in users)
        elif resource == "members":
            one_of("user_id", "user_ids")
            one_of("status", "status", "statuses")
            one_of("access_level", "access_level", "access_levels")
            one_of("most_recent_action", "most_recent_actions")
            products = set(_qlist(params, "product_ids", "product_id"))
            plans = set(_qlist(params, "plan_ids", "plan_id"))

            def holds(wanted: set[str], attr: str) -> Callable[[Any], bool]:
                return lambda r: any(
                    getattr(store.memberships[i], attr) in wanted for i in idx.memberships_by_member.get(r.id, [])
                )

            if products:
                preds.append(holds(products, "product_id"))
            if plans:
                preds.append(holds(plans, "plan_id"))
            if (ms := params.get("membership_status")) in ("active", "inactive"):
                active = ms == "active"
                preds.append(
                    lambda r: (
                        active
                        == any(
                            store.memberships[i].status in ACCESS_STATUSES
                            for i in idx.memberships_by_member.get(r.id, [])
                        )
                    )
                )
            if query := (params.get("query") or "").strip().lower():
                preds.append(lambda r: self._member_matches(r, query))
        elif resource == "payments":
            one_of("membership_id", "membership_id", "membership_ids")
            one_of("member_id", "member_id", "member_ids")
            one_of("user_id", "user_id", "user_ids")
            one_of("product_id", "product_id", "product_ids")
            one_of("plan_id", "plan_id", "plan_ids")
            one_of("status", "status", "statuses")
            one_of("substatus", "substatuses")
            one_of("billing_reason", "billing_reason", "billing_reasons")
            one_of("currency", "currency", "currencies")
            up_after, up_before = _time_param(params, "updated_after"), _time_param(params, "updated_before")
            if up_after is not None:
                preds.append(lambda r: r.updated_at > up_after)
            if up_before is not None:
                preds.append(lambda r: r.updated_at < up_before)
        elif resource == "products":
            vis = set(_qlist(params, "visibilities"))
            if vis and "all" not in vis:
                if "not_archived" in vis:
                    preds.append(lambda r: r.visibility != "archived")
                elif "not_quick_link" in vis:
                    preds.append(lambda r: r.visibility != "quick_link")
                else:
                    preds.append(lambda r: r.visibility in vis)
            if query := (params.get("query") or "").strip().lower():
                preds.append(lambda r: query in r.title.lower())
        elif resource == "invoices":
            statuses = set(_qlist(params, "statuses", "status"))
            if bad := statuses - set(INVOICE_STATUSES):
                raise ApiError(400, "bad_request", f"unknown status {sorted(bad)}; one of {list(INVOICE_STATUSES)}")
            if statuses:
                preds.append(lambda r: r.status in statuses)
            one_of("product_id", "product_ids")
            one_of("collection_method", "collection_methods")
        elif resource == "waitlist_entries":
            status = params.get("status")
            if status is not None and status not in ENTRY_STATUSES:
                raise ApiError(400, "bad_request", f"unknown status {status!r}; one of {list(ENTRY_STATUSES)}")
            # "Canceled signups are returned only when `status` is `canceled`."
            preds.append(lambda r: r.status == status if status else r.status != "canceled")
            one_of("plan_id", "plan_id")
            one_of("product_id", "product_id")
        elif resource == "reviews":
            preds.append(lambda r: r.status == "published")  # "Lists the published reviews"
            one_of("product_id", "product_id")
            for name, keep in (("min_stars", lambda r, n: r.stars >= n), ("max_stars", lambda r, n: r.stars <= n)):
                raw = params.get(name)
                if raw:
                    if not raw.isdigit() or not 1 <= int(raw) <= 5:
                        raise ApiError(400, "bad_request", f"{name} must be from 1 to 5")
                    preds.append(functools.partial(keep, n=int(raw)))
        elif resource == "people":
            one_of("user_id", "user_id")
            if (bought := params.get("has_purchased")) in ("true", "false"):
                preds.append(lambda r: (r.purchase_count > 0) == (bought == "true"))
        elif resource == "plans":
            one_of("product_id", "product_ids", "product_id")
            one_of("plan_type", "plan_types")
            one_of("visibility", "visibilities")
            one_of("release_method", "release_methods")
        return preds

    def _member_matches(self, member: Any, query: str) -> bool:
        user = self.store.users.get(member.user_id or "")
        names = [member.display_name, user.name if user else None, user.username if user else None]
        if any(query in (n or "").lower() for n in names):
            return True
        return (member.email or "").lower() == query  # exact email match only

    # ---- retrieve -------------------------------------------------------------------------
    def _retrieve(self, resource: str, obj_id: str, cred: Credential, legacy: bool) -> dict[str, Any]:
        table: dict[str, Any] = getattr(self.store, resource)
        record = table.get(obj_id)
        if record is None and resource == "memberships":  # a license key works too
            record = next((m for m in table.values() if m.license_key and m.license_key == obj_id), None)
        if record is None:
            what = {"waitlist_entries": "Waitlist entry"}.get(resource, resource[:-1].capitalize())
            raise ApiError(404, "not_found", f"{what} {obj_id} not found")
        public = resource == "products" and record.visibility == "visible"
        if record.company_id not in cred.company_ids and not public:
            raise ApiError(403, "forbidden", f"You do not have access to {obj_id}")
        return shapes.render(self.store, record, legacy=legacy, show_email=self._show_email(cred))
