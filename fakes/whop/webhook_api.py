"""`/api/v1/webhooks…`: Whop's webhook endpoints over the fake's `WebhookHub` (fact sheet §4.4).

    GET    /webhooks?account_id=             list, newest first, cursor pages; `webhook_secret` null
    POST   /webhooks                         {url, events?, api_version_date?, enabled?,
                                              child_resource_events?, resource_id?} → Webhook + secret
    GET    /webhooks/{id}                    Webhook (`webhook_secret` null)
    PATCH  /webhooks/{id}                    {url?, events?, enabled?, api_version_date?, child_resource_events?}
    DELETE /webhooks/{id}                    {"id", "deleted": true}
    GET    /webhooks/{id}/deliveries         WebhookDelivery list, newest first, cursor pages
    POST   /webhooks/{id}/replay             {sent_after, sent_before?, events?, failed_only?, regenerate_ids?}
                                             → {"queued": true}
    POST   /webhooks/{id}/deliveries/{whdel}/replay  {regenerate_id?} → {"body", "status", "success"}
    POST   /webhooks/{id}/test               {event} → {"body", "status", "success"}

Every one needs `developer:manage_webhook` (PY040 lists it on create, retrieve, update, list and
delete): an OAuth grant without it, or an API key whose company had it denied, gets a 403. A
webhook of a company the credential cannot read is a 403, an unknown one a 404, as for the
other objects of this fake. Shapes follow PY26 `types/webhook.py`, `webhook_list_item.py` and
`webhook_delivery.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.datastructures import QueryParams
from starlette.requests import Request

from fakes.whop._util import iso, to_ms
from fakes.whop.api import ApiError, Credential, decode_cursor, encode_cursor, page_size, require
from fakes.whop.webhooks import PERMISSION, Webhook, WebhookDelivery, WebhookHub

DEFAULT_PAGE = 10
_T = TypeVar("_T", Webhook, WebhookDelivery)


def webhook_json(hook: Webhook, *, secret: bool = False, list_item: bool = False) -> dict[str, Any]:
    """A Webhook (or WebhookListItem) as the API sends it; the secret only when asked (create)."""
    out: dict[str, Any] = {
        "id": hook.id,
        "url": hook.url,
        "enabled": hook.enabled,
        "events": list(hook.events),
        "api_version": hook.api_version,
        "api_version_date": hook.api_version_date,
        "child_resource_events": hook.child_resource_events,
        "resource_id": hook.resource_id,
    }
    if not list_item:
        out["testable_events"] = list(hook.events)
    out |= {
        "consecutive_failures": hook.consecutive_failures,
        "failing_since": iso(hook.failing_since),
        "last_failure_at": iso(hook.last_failure_at),
        "disabled_at": iso(hook.disabled_at),
        "disabled_reason": hook.disabled_reason,
        "created_at": iso(hook.created_at),
        "webhook_secret": hook.secret if secret else None,
    }
    return out


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event": delivery.event,
        "resource_id": delivery.resource_id,
        "request_body": delivery.envelope,
        "response_code": delivery.response_code,
        "response_body": delivery.response_body,
        "success": delivery.success,
        "sent_at": iso(delivery.sent_at),
        "total_time": delivery.total_time,
        "replayed_from": delivery.replayed_from,
    }


def _seq(order: str, cursor: str) -> int:
    mark = decode_cursor(order, cursor)[1]
    if not isinstance(mark, int):
        raise ApiError(400, "bad_request", "invalid cursor")
    return mark


def _page(
    items: Sequence[_T], params: QueryParams, render: Callable[[_T], dict[str, Any]], order: str
) -> dict[str, Any]:
    """Newest first; cursors are keyset positions, so rows added between pages are not repeated."""
    first, last = page_size(params, "first"), page_size(params, "last")
    if first is not None and last is not None:
        raise ApiError(400, "bad_request", "pass either first or last, not both")
    rows = sorted(items, key=lambda item: item.seq, reverse=True)
    if after := params.get("after"):
        mark = _seq(order, after)
        rows_after = [r for r in rows if r.seq < mark]
        skipped_before = len(rows) - len(rows_after)
        rows = rows_after
    else:
        skipped_before = 0
    if before := params.get("before"):
        mark = _seq(order, before)
        rows_before = [r for r in rows if r.seq > mark]
        skipped_after = len(rows) - len(rows_before)
        rows = rows_before
    else:
        skipped_after = 0
    if last is not None:
        page, more_before, more_after = rows[-last:], len(rows) > last, False
    else:
        size = first or DEFAULT_PAGE
        page, more_before, more_after = rows[:size], False, len(rows) > size
    cursors = [encode_cursor(order, (0, r.seq, r.id)) for r in page]
    return {
        "data": [render(r) for r in page],
        "page_info": {
            "end_cursor": cursors[-1] if cursors else None,
            "start_cursor": cursors[0] if cursors else None,
            "has_next_page": more_after or skipped_after > 0,
            "has_previous_page": more_before or skipped_before > 0,
        },
    }


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "bad_request", "the body must be JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return data


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, "bad_request", f"{name} must be a boolean")
    return value


def _time(body: dict[str, Any], name: str) -> str | None:
    """An ISO 8601 field, checked (the hub parses it again)."""
    value = body.get(name)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        to_ms(value)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an ISO 8601 timestamp") from None
    return value


def _query_flag(params: QueryParams, name: str) -> bool:
    return (params.get(name) or "").lower() in ("true", "1")


class WebhookRoutes:
    def __init__(self, hub: WebhookHub) -> None:
        self.hub = hub

    async def handle(self, request: Request, cred: Credential, parts: list[str]) -> dict[str, Any]:
        require(cred, PERMISSION)
        method = request.method
        match parts:
            case ["webhooks"] if method == "GET":
                return self._list(request.query_params, cred)
            case ["webhooks"] if method == "POST":
                return self._create(await _body(request), cred)
            case ["webhooks", hook_id] if method == "GET":
                return webhook_json(self._owned(hook_id, cred))
            case ["webhooks", hook_id] if method == "PATCH":
                return self._update(self._owned(hook_id, cred), await _body(request))
            case ["webhooks", hook_id] if method == "DELETE":
                self.hub.delete(self._owned(hook_id, cred).id)
                return {"id": hook_id, "deleted": True}
            case ["webhooks", hook_id, "deliveries"] if method == "GET":
                hook = self._owned(hook_id, cred)
                return _page(self.hub.deliveries(hook.id), request.query_params, delivery_json, "deliveries")
            case ["webhooks", hook_id, "replay"] if method == "POST":
                return await self._replay(self._owned(hook_id, cred), await _body(request))
            case ["webhooks", hook_id, "deliveries", delivery_id, "replay"] if method == "POST":
                hook = self._owned(hook_id, cred)
                body = await _body(request)
                sent = await self.hub.replay_delivery(hook.id, delivery_id, regenerate_id=_flag(body, "regenerate_id"))
                # Raw text, empty when unreachable (PY26 ReplayDeliveryWebhooksResponse).
                return {"body": sent.response_text, "status": sent.response_code, "success": sent.success}
            case ["webhooks", hook_id, "test"] if method == "POST":
                return await self._test(self._owned(hook_id, cred), await _body(request))
            case ["webhooks", *_]:
                raise ApiError(404, "not_found", f"No route for {method} /api/v1/{'/'.join(parts)}")
        raise ApiError(404, "not_found", f"No route for /api/v1/{'/'.join(parts)}")

    # ---- scoping --------------------------------------------------------------------------
    def _owned(self, hook_id: str, cred: Credential) -> Webhook:
        hook = self.hub.hooks.get(hook_id)
        if hook is None:
            raise ApiError(404, "not_found", f"Webhook {hook_id} not found")
        if hook.resource_id not in cred.company_ids:
            raise ApiError(403, "forbidden", f"You do not have access to {hook_id}")
        return hook

    def _account(self, requested: Any, cred: Credential, name: str) -> str:
        if requested is None or requested == "":
            if cred.default_company_id is None:
                raise ApiError(400, "bad_request", f"{name} is required with a user token")
            return cred.default_company_id
        if not isinstance(requested, str):
            raise ApiError(400, "bad_request", f"{name} must be a string")
        if requested.startswith("app_"):
            raise ApiError(400, "bad_request", "app webhooks are not modelled by this fake")
        if requested not in cred.company_ids:
            raise ApiError(403, "forbidden", f"You do not have access to account {requested}")
        return requested

    # ---- operations -------------------------------------------------------------------------
    def _list(self, params: QueryParams, cred: Credential) -> dict[str, Any]:
        company_id = self._account(params.get("account_id") or params.get("company_id"), cred, "account_id")
        hooks = [] if params.get("app_id") else self.hub.of(company_id)  # no app webhooks here
        if _query_flag(params, "has_failures"):
            hooks = [h for h in hooks if h.failing_since is not None]
        return _page(hooks, params, lambda h: webhook_json(h, list_item=True), "webhooks")

    def _create(self, body: dict[str, Any], cred: Credential) -> dict[str, Any]:
        if "url" not in body:
            raise ApiError(400, "bad_request", "url is required")
        if body.get("api_version") not in (None, "v1"):
            raise ApiError(400, "bad_request", "only v1 webhooks can be created through the API")
        company_id = self._account(body.get("resource_id"), cred, "resource_id")
        hook = self.hub.add(
            company_id,
            body["url"],
            body.get("events") or [],
            api_version_date=body.get("api_version_date"),
            enabled=True if body.get("enabled") is None else body["enabled"],
            child_resource_events=body.get("child_resource_events") or False,
        )
        return webhook_json(hook, secret=True)

    def _update(self, hook: Webhook, body: dict[str, Any]) -> dict[str, Any]:
        fields = ("url", "events", "enabled", "api_version_date", "child_resource_events")
        changes = {name: body[name] for name in fields if name in body}
        for name in ("url", "events", "enabled", "child_resource_events"):
            if name in changes and changes[name] is None:
                del changes[name]  # null leaves these unchanged; only api_version_date=null means something
        return webhook_json(self.hub.update(hook.id, **changes))

    async def _replay(self, hook: Webhook, body: dict[str, Any]) -> dict[str, Any]:
        sent_after = _time(body, "sent_after")
        if sent_after is None:
            raise ApiError(400, "bad_request", "sent_after is required")
        events = body.get("events")
        if events is not None and (not isinstance(events, list) or not all(isinstance(e, str) for e in events)):
            raise ApiError(400, "bad_request", "events must be a list of event names")
        sent_before = _time(body, "sent_before")  # checked before anything is sent
        await self.hub.replay(
            hook.id,
            sent_after=sent_after,
            sent_before=sent_before,
            events=events,
            failed_only=_flag(body, "failed_only"),
            regenerate_ids=_flag(body, "regenerate_ids"),
        )
        return {"queued": True}

    async def _test(self, hook: Webhook, body: dict[str, Any]) -> dict[str, Any]:
        event = body.get("event")
        if not isinstance(event, str) or not event:
            raise ApiError(400, "bad_request", "event is required")
        sent = await self.hub.send_test(hook.id, event)
        try:
            answer: Any = json.loads(sent.response_text) if sent.response_text else None
        except ValueError:
            answer = sent.response_text
        return {"body": answer, "status": sent.response_code, "success": sent.success}


__all__ = ["WebhookRoutes", "delivery_json", "webhook_json"]
