"""Whop's company webhooks as the fake keeps them: endpoints, signed deliveries, health, replay.

Python API (shortcuts on `FakeWhop`; everything else on `fake.hooks`, a `WebhookHub`):

    hook = fake.add_webhook("biz_a", "http://bridge.test/webhooks/whop", ["membership.activated"])
    hook.secret                                   # "ws_…"; over REST only the create response shows it
    fake.webhook_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=bridge_app))  # else loopback
    sent = await fake.emit("biz_a", "membership.activated", "mem_…")     # -> list[WebhookDelivery]
    fake.webhooks_of("biz_a") / fake.webhook(hook.id) / fake.webhook_deliveries(hook.id)
    fake.disable_webhook(hook.id)                 # what Whop does after 3 days of failures
    await fake.run_webhook_retries()              # retries due by the fake's clock (10/20/40 s)
    await fake.hooks.replay(hook.id, sent_after=t, failed_only=True)
    await fake.hooks.replay_delivery(hook.id, "whdel_…")
    fake.hooks.update(hook.id, enabled=True) / fake.hooks.delete(hook.id) / fake.hooks.rotate_secret(hook.id)
    fake.deny_key_permission("biz_a")             # the key now lacks developer:manage_webhook

Emission (fact sheet §4): one `msg_…` id per event, shared by every enabled webhook of the
company subscribed to the type; each POST is signed with that webhook's own secret (its raw
UTF-8 bytes, Standard Webhooks). Webhooks pinned to `2026-10-15-1` get the native envelope
(`account_id`), unpinned or `2025-01-01` ones the legacy one (`company_id`). Every attempt is a
`WebhookDelivery` (`whdel_…`): status code, or 0 with `error` when the endpoint could not be
reached (refused, DNS, timeout after `hub.timeout` s). A webhook that is disabled receives
nothing and records nothing, so replay cannot recover those events (reconcile instead).

Health, as PY26 `types/webhook.py` describes it: `consecutive_failures` counts messages whose
*first* attempt failed (retries don't add), `failing_since` is the streak's first failed
attempt, `last_failure_at` is set when a message fails its last attempt (after the retries, or
a replay), any 2xx resets the streak, and a webhook failing for 3 days by the fake's clock is
disabled (`disabled_reason="delivery_failures"`, `disabled_at`). Re-enabling clears all that.

Retries (the archived docs: 3 retries, 10/20/40 s apart) are not sent on their own: a test
calls `run_webhook_retries()` after moving its clock, or `run_webhook_retries(until_done=True)`
to play the whole schedule at once. Set `hub.retry_delays = ()` for no retries.

Replay keeps the stored body and `webhook-id` (unless `regenerate_ids`), signs afresh with the
webhook's current secret and a fresh timestamp, and posts to its current URL. Only enabled v1
webhooks replay, only deliveries of the last 30 days are kept. The fake replays before it
answers (Whop queues it), so a test sees the re-sends as soon as the call returns.

`add_webhook` pins to `2026-10-15-1` unless told otherwise; POST /webhooks without
`api_version_date` leaves the webhook unpinned (legacy payloads), as Whop does. When the fake
runs on uvicorn (`fake.serve()`, its own event loop), leave `webhook_client` None: a client
made on the test's loop cannot be used from the server's.

Guesses (no source says): a delivery's `resource_id` is the account the event belongs to; a
disabled webhook's replay is a 409; the `test` send is neither logged nor counted in health.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import anyio
import httpx

from fakes.whop import shapes, signer
from fakes.whop._util import TimeInput, to_ms
from fakes.whop.api import SUPPORTED_VERSIONS, ApiError
from fakes.whop.store import Company, Record

if TYPE_CHECKING:
    from fakes.whop.app import FakeWhop

DAY_MS = 86_400_000
RETENTION_MS = 30 * DAY_MS  # deliveries are kept (and replayable) for 30 days
AUTO_DISABLE_MS = 3 * DAY_MS  # "every delivery failed for 3 days straight"
RETRY_DELAYS = (10.0, 20.0, 40.0)  # seconds between attempts (archived DOC-WH)
TIMEOUT = 5.0  # seconds Whop waits for a 2xx (third-party note)
USER_AGENT = "Whop-Webhooks/1.0 (fake)"
PERMISSION = "developer:manage_webhook"

# The `events` Whop accepts on create/update (PY26 `create_webhooks_request_events_item.py`).
EVENT_TYPES = frozenset(
    """
    account.updated account.financing_approved account.financing_denied account.financing_disabled
    invoice.created invoice.marked_uncollectible invoice.paid invoice.past_due invoice.voided
    membership.activated membership.deactivated membership.trial_ending_soon membership.updated
    membership.cancel_at_period_end_changed
    entry.created entry.approved entry.denied entry.deleted export.completed export.failed
    setup_intent.requires_action setup_intent.succeeded setup_intent.canceled
    ledger_account.funds_available swap.completed deposit.succeeded financial_activity.funds_available
    transfer.created transfer.completed transfer.failed payout.created payout.updated payout.reversed
    card_transaction.created card_transaction.updated card_transaction.completed card_transaction.declined
    card_transaction.reversed card.created card.updated card.frozen card.canceled
    card_application.created card_application.updated card_application.approved card_application.denied
    course_lesson_interaction.completed payout_method.created verification.succeeded
    identity_profile.approved identity_profile.rejected identity_profile.needs_action identity_profile.updated
    payout_account.status_updated payment.authorized payment.canceled
    resolution_center_case.created resolution_center_case.updated resolution_center_case.decided
    product.created product.updated product.deleted product.published product.unpublished
    plan.created plan.updated plan.deleted shipment.created shipment.updated member.created member.updated
    ad_campaign.created ad_campaign.payment_failed ad_campaign.updated ad_campaign.events
    ad_group.created ad_group.updated ad.created ad.updated chat.message.created chat.reaction.created
    payment.created payment.succeeded payment.failed payment.pending payment.requires_action
    dispute.created dispute.updated refund.created refund.updated dispute_alert.created
    """.split()
)

Attempt = Literal["first", "retry", "replay", "test"]
_UNSET: Any = object()


@dataclass(kw_only=True)
class Webhook:
    """One webhook endpoint of a company (times are epoch ms, like the rest of the store)."""

    id: str  # hook_…
    resource_id: str  # the company (biz_…) it belongs to
    url: str
    events: list[str]
    secret: str  # ws_…
    api_version_date: str | None  # None: unpinned, legacy payloads
    enabled: bool = True
    child_resource_events: bool = False
    api_version: str = "v1"
    created_at: int = 0
    consecutive_failures: int = 0
    failing_since: int | None = None
    last_failure_at: int | None = None
    disabled_at: int | None = None
    disabled_reason: str | None = None
    seq: int = 0  # creation order (ties under a frozen clock)

    @property
    def legacy(self) -> bool:
        return self.api_version_date != shapes.NATIVE_VERSION


@dataclass(kw_only=True)
class WebhookDelivery:
    """One attempt to POST a message to a webhook."""

    id: str  # whdel_…
    hook_id: str
    message_id: str  # msg_…: the `webhook-id` header and the envelope's `id`
    event: str
    resource_id: str
    envelope: dict[str, Any]  # `request_body` on the wire
    body: bytes  # the exact bytes sent (and re-sent by a replay)
    headers: dict[str, str]
    url: str
    response_code: int  # 0: the endpoint could not be reached
    response_text: str
    success: bool
    sent_at: int
    total_time: float  # seconds
    attempt: Attempt
    replayed_from: str | None = None
    error: str | None = None  # why it could not be reached
    seq: int = 0

    @property
    def response_body(self) -> dict[str, Any] | None:
        """Whop stores a JSON object as is, anything else as `{error, raw_body}` (first 100 bytes)."""
        if self.response_code == 0:
            return None
        try:
            parsed = json.loads(self.response_text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        raw = self.response_text.encode()[:100].decode(errors="replace")
        return {"error": "response is not a JSON object", "raw_body": raw}


@dataclass
class _Retry:
    hook_id: str
    delivery_id: str  # the failed attempt being repeated
    number: int  # 1 for the first retry
    due_at: int


def _check_url(url: Any) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(400, "bad_request", "url must be an http(s) URL")
    return str(url)


def _check_events(events: Any) -> list[str]:
    if isinstance(events, str | bytes | dict) or not isinstance(events, Iterable):
        raise ApiError(400, "bad_request", "events must be a list of event names")
    events = list(events)
    if not all(isinstance(e, str) for e in events):
        raise ApiError(400, "bad_request", "events must be a list of event names")
    if unknown := sorted(set(events) - EVENT_TYPES):
        raise ApiError(400, "bad_request", f"unknown event(s) {unknown}; use dot form, e.g. membership.activated")
    return list(dict.fromkeys(events))


def _check_version(version: Any) -> str | None:
    if version is not None and version not in SUPPORTED_VERSIONS:
        raise ApiError(
            400,
            "invalid_api_version",
            f"Unsupported api_version_date {version!r}. Supported versions: {', '.join(SUPPORTED_VERSIONS)}",
        )
    return None if version is None else str(version)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, "bad_request", f"{name} must be a boolean")
    return value


class WebhookHub:
    """Every company's webhooks and their delivery log, plus the sender."""

    def __init__(self, fake: FakeWhop) -> None:
        self.fake = fake
        self.client: httpx.AsyncClient | None = None  # None: a fresh client per send (loopback)
        self.timeout = TIMEOUT
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS
        self.hooks: dict[str, Webhook] = {}
        self._log: dict[str, list[WebhookDelivery]] = {}  # hook id → attempts, oldest first
        self._by_id: dict[str, WebhookDelivery] = {}
        self._retries: list[_Retry] = []
        self._seq = 0

    # ---- endpoints --------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _new_id(self, prefix: str, taken: Iterable[str]) -> str:
        used = set(taken)
        while (candidate := self.fake.ids.new(prefix, 14)) in used:
            pass
        return candidate

    def _new_secret(self) -> str:
        return f"ws_{self.fake.ids.rng.getrandbits(256):064x}"

    def add(
        self,
        company_id: str,
        url: str,
        events: Iterable[str] = (),
        *,
        api_version_date: str | None = shapes.NATIVE_VERSION,
        enabled: bool = True,
        child_resource_events: bool = False,
    ) -> Webhook:
        """A webhook on `company_id` (checked like POST /webhooks); `.secret` holds its secret."""
        if company_id not in self.fake.companies:
            raise KeyError(company_id)
        with self.fake.lock:
            hook = Webhook(
                id=self._new_id("hook_", self.hooks),
                resource_id=company_id,
                url=_check_url(url),
                events=_check_events(events),
                secret=self._new_secret(),
                api_version_date=_check_version(api_version_date),
                enabled=_check_bool("enabled", enabled),
                child_resource_events=_check_bool("child_resource_events", child_resource_events),
                created_at=self.fake.now_ms(),
                seq=self._next_seq(),
            )
            self.hooks[hook.id] = hook
            self._log[hook.id] = []
            return hook

    def get(self, hook_id: str) -> Webhook:
        return self.hooks[hook_id]

    def of(self, company_id: str) -> list[Webhook]:
        """The company's webhooks, oldest first."""
        return sorted((h for h in self.hooks.values() if h.resource_id == company_id), key=lambda h: h.seq)

    def update(self, hook_id: str, **changes: Any) -> Webhook:
        """PATCH semantics: url, events, enabled, api_version_date (None unpins), child_resource_events."""
        allowed = {"url", "events", "enabled", "api_version_date", "child_resource_events"}
        if unknown := set(changes) - allowed:
            raise TypeError(f"cannot update {sorted(unknown)}")
        hook = self.hooks[hook_id]
        checked: dict[str, Callable[[Any], Any]] = {
            "url": _check_url,
            "events": _check_events,
            "api_version_date": _check_version,
            "enabled": lambda v: _check_bool("enabled", v),
            "child_resource_events": lambda v: _check_bool("child_resource_events", v),
        }
        values = {name: checked[name](value) for name, value in changes.items()}  # all valid, or nothing changes
        with self.fake.lock:
            enabled = values.pop("enabled", None)
            for name, value in values.items():
                setattr(hook, name, value)
            if enabled is True and not hook.enabled:
                self.enable(hook_id)
            elif enabled is False and hook.enabled:
                hook.enabled = False  # disabled by its owner: no disabled_at / disabled_reason
        return hook

    def enable(self, hook_id: str) -> Webhook:
        """Re-enable: the failure streak and Whop's disable marks are cleared."""
        with self.fake.lock:
            hook = self.hooks[hook_id]
            hook.enabled = True
            hook.consecutive_failures = 0
            hook.failing_since = None
            hook.disabled_at = None
            hook.disabled_reason = None
            return hook

    def disable(self, hook_id: str, reason: str = "delivery_failures", *, at: int | None = None) -> Webhook:
        """Disable as Whop does on its own (`disabled_reason`, `disabled_at` set)."""
        with self.fake.lock:
            hook = self.hooks[hook_id]
            hook.enabled = False
            hook.disabled_reason = reason
            hook.disabled_at = self.fake.now_ms() if at is None else at
            self._retries = [r for r in self._retries if r.hook_id != hook_id]
            return hook

    def delete(self, hook_id: str) -> None:
        with self.fake.lock:
            del self.hooks[hook_id]
            for delivery in self._log.pop(hook_id, []):
                self._by_id.pop(delivery.id, None)
            self._retries = [r for r in self._retries if r.hook_id != hook_id]

    def rotate_secret(self, hook_id: str) -> str:
        """A new secret for the webhook (later sends and replays are signed with it)."""
        with self.fake.lock:
            hook = self.hooks[hook_id]
            hook.secret = self._new_secret()
            return hook.secret

    def deliveries(self, hook_id: str) -> list[WebhookDelivery]:
        """The webhook's attempts still retained (30 days), oldest first."""
        cutoff = self.fake.now_ms() - RETENTION_MS
        return [d for d in self._log.get(hook_id, []) if d.sent_at >= cutoff]

    def delivery(self, hook_id: str, delivery_id: str) -> WebhookDelivery:
        found = next((d for d in self.deliveries(hook_id) if d.id == delivery_id), None)
        if found is None:
            raise ApiError(404, "not_found", f"Delivery {delivery_id} not found")
        return found

    # ---- sending ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _http(self, client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
        chosen = client or self.client
        if chosen is not None:
            yield chosen
            return
        async with httpx.AsyncClient() as own:
            yield own

    async def _attempt(
        self,
        http: httpx.AsyncClient,
        hook: Webhook,
        *,
        message_id: str,
        event: str,
        envelope: dict[str, Any],
        body: bytes,
        attempt: Attempt,
        replayed_from: str | None = None,
    ) -> WebhookDelivery:
        """POST once, signed with the webhook's current secret at the fake's current time."""
        timestamp = int(self.fake.clock())
        headers = signer.signed_headers(hook.secret, body, webhook_id=message_id, timestamp=timestamp)
        headers["user-agent"] = USER_AGENT
        code, text, error = 0, "", None
        started = time.perf_counter()
        try:
            with anyio.fail_after(self.timeout):  # also bounds in-process (ASGI) endpoints
                response = await http.post(hook.url, content=body, headers=headers)
            code, text = response.status_code, response.text
        except (TimeoutError, httpx.TimeoutException):
            error = f"timeout after {self.timeout:g} s"
        except httpx.TransportError as exc:  # connection refused, DNS, protocol errors
            error = f"{type(exc).__name__}: {exc}"
        return WebhookDelivery(
            id=self._new_id("whdel_", self._by_id),
            hook_id=hook.id,
            message_id=message_id,
            event=event,
            resource_id=hook.resource_id,
            envelope=envelope,
            body=body,
            headers=headers,
            url=hook.url,
            response_code=code,
            response_text=text,
            success=200 <= code < 300,
            sent_at=self.fake.now_ms(),
            total_time=round(time.perf_counter() - started, 6),
            attempt=attempt,
            replayed_from=replayed_from,
            error=error,
        )

    def _record(self, hook: Webhook, delivery: WebhookDelivery, *, first: bool, final: bool) -> None:
        """Log the attempt and update the webhook's health fields."""
        with self.fake.lock:
            delivery.seq = self._next_seq()
            if hook.id in self.hooks:  # not deleted while the request was in flight
                self._log[hook.id].append(delivery)
                self._by_id[delivery.id] = delivery
            now = delivery.sent_at
            if delivery.success:
                hook.consecutive_failures = 0
                hook.failing_since = None
                return
            if hook.failing_since is None:
                hook.failing_since = now
            if first:
                hook.consecutive_failures += 1
            if final:
                hook.last_failure_at = now
            if hook.enabled and now - hook.failing_since >= AUTO_DISABLE_MS:
                self.disable(hook.id, at=now)

    def _schedule_retry(self, hook: Webhook, delivery: WebhookDelivery, number: int) -> bool:
        """Queue retry `number` of a failed attempt; False when the schedule is used up."""
        if delivery.success or number > len(self.retry_delays) or not hook.enabled:
            return False
        due = delivery.sent_at + round(self.retry_delays[number - 1] * 1000)
        with self.fake.lock:
            self._retries.append(_Retry(hook.id, delivery.id, number, due))
        return True

    def _company_check(self, company_id: str, data: Any) -> None:
        if company_id not in self.fake.companies:
            raise KeyError(company_id)
        record: Record | dict[str, Any] | None = self.fake.get(data) if isinstance(data, str) else data
        owner = record.id if isinstance(record, Company) else getattr(record, "company_id", None)
        if owner is not None and owner != company_id:
            raise ValueError(f"{getattr(record, 'id', data)} belongs to {owner}, not {company_id}")

    async def emit(
        self,
        company_id: str,
        event_type: str,
        data: Any = None,
        *,
        client: httpx.AsyncClient | None = None,
        previous_attributes: dict[str, Any] | None = None,
    ) -> list[WebhookDelivery]:
        """Send one event to every enabled webhook of the company subscribed to `event_type`.

        `data` is an object id or record of that company (rendered now, in each webhook's
        payload family), a ready dict (sent verbatim), or None (`data: null`).
        """
        self._company_check(company_id, data)
        targets = [h for h in self.of(company_id) if h.enabled and event_type in h.events]
        if not targets:
            return []
        message_id = self.fake.ids.new("msg_", 24)
        when = self.fake.clock()
        envelopes: dict[bool, dict[str, Any]] = {}
        sent: list[WebhookDelivery] = []
        async with self._http(client) as http:
            for hook in targets:
                if hook.legacy not in envelopes:
                    envelopes[hook.legacy] = self.fake.event(
                        event_type,
                        data,
                        company_id,
                        webhook_id=message_id,
                        timestamp=when,
                        legacy=hook.legacy,
                        previous_attributes=previous_attributes,
                    )
                envelope = envelopes[hook.legacy]
                delivery = await self._attempt(
                    http,
                    hook,
                    message_id=message_id,
                    event=event_type,
                    envelope=envelope,
                    body=signer.compact(envelope),
                    attempt="first",
                )
                retrying = self._schedule_retry(hook, delivery, 1)
                self._record(hook, delivery, first=True, final=not retrying)
                sent.append(delivery)
        return sent

    async def run_retries(
        self, *, until_done: bool = False, client: httpx.AsyncClient | None = None
    ) -> list[WebhookDelivery]:
        """Send the retries due by the fake's clock (`until_done`: the whole schedule, now)."""
        sent: list[WebhookDelivery] = []
        async with self._http(client) as http:
            while True:
                now = self.fake.now_ms()
                with self.fake.lock:
                    due = sorted((r for r in self._retries if until_done or r.due_at <= now), key=lambda r: r.due_at)
                    self._retries = [r for r in self._retries if r not in due]
                if not due:
                    return sent
                for retry in due:
                    hook = self.hooks.get(retry.hook_id)
                    origin = self._by_id.get(retry.delivery_id)
                    if hook is None or origin is None or not hook.enabled:
                        continue
                    delivery = await self._attempt(
                        http,
                        hook,
                        message_id=origin.message_id,
                        event=origin.event,
                        envelope=origin.envelope,
                        body=origin.body,
                        attempt="retry",
                    )
                    retrying = self._schedule_retry(hook, delivery, retry.number + 1)
                    self._record(hook, delivery, first=False, final=not retrying)
                    sent.append(delivery)
                if not until_done:
                    return sent

    # ---- replay and test ----------------------------------------------------------------------
    def _replayable(self, hook_id: str) -> Webhook:
        hook = self.hooks.get(hook_id)
        if hook is None:
            raise ApiError(404, "not_found", f"Webhook {hook_id} not found")
        if not hook.enabled:
            raise ApiError(409, "conflict", "Replay is only available for enabled webhooks")
        if hook.api_version != "v1":
            raise ApiError(409, "conflict", "Replay is only available for v1 webhooks")
        return hook

    async def _resend(
        self, http: httpx.AsyncClient, hook: Webhook, origin: WebhookDelivery, *, regenerate: bool
    ) -> WebhookDelivery:
        message_id, envelope, body = origin.message_id, origin.envelope, origin.body
        if regenerate:  # a new id in the envelope and the headers; the rest of the body as sent
            message_id = self.fake.ids.new("msg_", 24)
            envelope = {**envelope, "id": message_id}
            body = signer.compact(envelope)
        delivery = await self._attempt(
            http,
            hook,
            message_id=message_id,
            event=origin.event,
            envelope=envelope,
            body=body,
            attempt="replay",
            replayed_from=origin.id,
        )
        self._record(hook, delivery, first=False, final=True)
        return delivery

    async def replay(
        self,
        hook_id: str,
        *,
        sent_after: TimeInput,
        sent_before: TimeInput = None,
        events: Iterable[str] | None = None,
        failed_only: bool = False,
        regenerate_ids: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> list[WebhookDelivery]:
        """POST /webhooks/{id}/replay: each message sent in the window is re-sent once.

        The window is (sent_after, sent_before), sent_after clamped to the 30-day retention
        and sent_before defaulting to now (inclusive). `failed_only` keeps messages whose
        latest attempt in the window failed.
        """
        hook = self._replayable(hook_id)
        now = self.fake.now_ms()
        after, before = to_ms(sent_after), to_ms(sent_before)
        if after is None:
            raise ApiError(400, "bad_request", "sent_after is required")
        if before is not None and after >= before:
            raise ApiError(400, "bad_request", "sent_after must be earlier than sent_before")
        if (before if before is not None else now) <= now - RETENTION_MS:
            raise ApiError(400, "bad_request", "The window is outside the 30-day delivery retention")
        after = max(after, now - RETENTION_MS)
        wanted = set(events or ())
        latest: dict[str, WebhookDelivery] = {}  # message id → its latest attempt, in first-sent order
        for delivery in self.deliveries(hook_id):
            in_window = delivery.sent_at > after and (before is None or delivery.sent_at < before)
            if in_window and (not wanted or delivery.event in wanted):
                latest[delivery.message_id] = delivery
        picks = [d for d in latest.values() if not (failed_only and d.success)]
        async with self._http(client) as http:
            return [await self._resend(http, hook, d, regenerate=regenerate_ids) for d in picks]

    async def replay_delivery(
        self,
        hook_id: str,
        delivery_id: str,
        *,
        regenerate_id: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> WebhookDelivery:
        """POST /webhooks/{id}/deliveries/{whdel}/replay: re-send that attempt's payload now."""
        hook = self._replayable(hook_id)
        origin = self.delivery(hook_id, delivery_id)
        async with self._http(client) as http:
            return await self._resend(http, hook, origin, regenerate=regenerate_id)

    async def send_test(self, hook_id: str, event: str, *, client: httpx.AsyncClient | None = None) -> WebhookDelivery:
        """POST /webhooks/{id}/test: a signed sample of `event` with `data: null`, not logged."""
        hook = self.hooks[hook_id]
        if event not in hook.events:
            raise ApiError(400, "bad_request", f"{event!r} is not one of this webhook's testable events")
        message_id = self.fake.ids.new("msg_", 24)
        envelope = self.fake.event(event, None, hook.resource_id, webhook_id=message_id, legacy=hook.legacy)
        async with self._http(client) as http:
            return await self._attempt(
                http,
                hook,
                message_id=message_id,
                event=event,
                envelope=envelope,
                body=signer.compact(envelope),
                attempt="test",
            )


__all__ = ["EVENT_TYPES", "PERMISSION", "Webhook", "WebhookDelivery", "WebhookHub"]
