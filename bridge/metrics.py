"""Prometheus metrics, exposed at `/metrics` by the web app.

Counters are incremented where the work happens; gauges that need the database (inbox depth)
are refreshed when `/metrics` is scraped.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

WEBHOOKS = Counter("bridge_webhooks_total", "Whop webhook deliveries by outcome", ["outcome"])
INBOX = Gauge("bridge_inbox_events", "Webhook inbox rows by status", ["status"])
INBOX_OLDEST = Gauge("bridge_inbox_oldest_pending_seconds", "Age of the oldest event not yet applied")
RECORDS = Counter("bridge_records_total", "Records handled by the sync, by object and outcome", ["object", "outcome"])
API_CALLS = Counter("bridge_api_calls_total", "Calls to Whop and Twenty", ["service", "kind"])
API_SECONDS = Histogram(
    "bridge_api_call_seconds",
    "Latency of calls to Whop and Twenty",
    ["service"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
API_THROTTLED = Counter(
    "bridge_api_throttled_total", "Calls refused for rate limiting (429 / Limit reached)", ["service"]
)
LAST_RECONCILE = Gauge(
    "bridge_last_successful_reconcile_timestamp_seconds",
    "When the last scheduled reconciliation succeeded",
    ["company_id"],
)
WEBHOOK_ENABLED = Gauge(
    "bridge_whop_webhook_enabled", "1 when the company's webhook at Whop is enabled (read at scrape)", ["company_id"]
)
WEBHOOK_FAILURES = Gauge(
    "bridge_whop_webhook_consecutive_failures",
    "Consecutive failed deliveries Whop last reported for the company's webhook",
    ["company_id"],
)
WEBHOOK_REPLAYS = Counter("bridge_whop_webhook_replays_total", "Replays asked of Whop", ["company_id"])

__all__ = [
    "API_CALLS",
    "API_SECONDS",
    "API_THROTTLED",
    "CONTENT_TYPE_LATEST",
    "INBOX",
    "INBOX_OLDEST",
    "LAST_RECONCILE",
    "RECORDS",
    "WEBHOOKS",
    "WEBHOOK_ENABLED",
    "WEBHOOK_FAILURES",
    "WEBHOOK_REPLAYS",
    "generate_latest",
]
