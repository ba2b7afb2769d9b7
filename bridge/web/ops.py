"""Operational endpoints: `/readyz` (database and Twenty reachable) and `/metrics` (Prometheus)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge import metrics, registration
from bridge.runtime import Runtime
from bridge.store import inbox
from bridge.store.db import ping


def routes(runtime: Runtime) -> list[Route]:
    settings = runtime.settings

    def store() -> AsyncEngine:
        return runtime.store

    async def readyz(_: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await ping(store())
            checks["database"] = "ok"
        except Exception as exc:  # any failure means "not ready"; the type is enough detail
            checks["database"] = f"unreachable ({type(exc).__name__})"
        if settings.twenty_url:
            try:
                async with httpx.AsyncClient(transport=runtime.transports.twenty, timeout=5) as client:
                    response = await client.get(settings.twenty_url + "/healthz")
                checks["twenty"] = "ok" if response.status_code < 500 else f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                checks["twenty"] = f"unreachable ({type(exc).__name__})"
        else:
            checks["twenty"] = "not configured"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
        )

    async def metrics_endpoint(_: Request) -> Response:
        try:
            for status, n in (await inbox.counts(store())).items():
                metrics.INBOX.labels(status).set(n)
            metrics.INBOX_OLDEST.set(await inbox.oldest_pending_age(store()) or 0)
            # Read from the store, so any replica's scrape shows what the worker last learnt.
            for hook in await registration.states(store()):
                if hook.webhook_id is not None:
                    metrics.WEBHOOK_ENABLED.labels(hook.company_id).set(1 if hook.enabled else 0)
                    metrics.WEBHOOK_FAILURES.labels(hook.company_id).set(hook.consecutive_failures)
        except Exception:  # noqa: S110 - stale gauges beat a failed scrape while the database is down
            pass
        return Response(metrics.generate_latest(), media_type=metrics.CONTENT_TYPE_LATEST)

    return [
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
