"""Operations: metrics after a sync, readiness, and replaying failed webhooks from the admin page."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store import inbox
from bridge.store.db import utcnow

from .conftest import login, page_csrf


async def test_metrics_expose_the_counters_after_a_sync(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    from bridge import metrics

    metrics.RECORDS.labels("person", "created").inc(3)  # what a sync records as it writes
    metrics.API_CALLS.labels("twenty", "write").inc()
    await inbox.store(
        engine,
        webhook_id="msg_m1",
        event_type="membership.updated",
        company_id="biz_x",
        body="{}",
        received_at=utcnow(),
    )

    text = (await client.get("/metrics")).text

    assert 'bridge_records_total{object="person",outcome="created"}' in text
    assert 'bridge_api_calls_total{kind="write",service="twenty"}' in text
    assert 'bridge_inbox_events{status="pending"} 1.0' in text
    assert "bridge_webhooks_total" in text and "bridge_last_successful_reconcile_timestamp_seconds" in text


async def test_readyz_checks_the_database_and_twenty(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "twenty": "ok"}}


async def test_a_failed_webhook_can_be_replayed_from_the_admin_page(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await inbox.store(
        engine,
        webhook_id="msg_broken",
        event_type="membership.updated",
        company_id="biz_x",
        body="{}",
        received_at=utcnow(),
    )
    claimed = await inbox.claim(engine, "w1")
    await inbox.mark_failed(engine, claimed[0].webhook_id, "w1", "Twenty answered HTTP 503", permanent=True)
    await login(client)

    page = await client.get("/")
    assert "msg_broken" in page.text and "Twenty answered HTTP 503" in page.text
    anonymous = await httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url)).post(
        "/webhooks/replay", data={"webhook_id": "msg_broken"}
    )
    assert anonymous.status_code in (303, 401, 403) and (await inbox.get_event(engine, "msg_broken")).status == "dead"

    response = await client.post(
        "/webhooks/replay", data={"webhook_id": "msg_broken", "csrf_token": await page_csrf(client)}
    )

    assert response.status_code == 303
    event = await inbox.get_event(engine, "msg_broken")
    assert event is not None and event.status == "pending" and event.attempts == 0
