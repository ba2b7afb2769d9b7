"""A faithful fake of Whop's API, OAuth and webhooks, for tests, e2e runs and the demo.

    from fakes.whop import FakeWhop, seed_company
    fake = FakeWhop(clock=clock)
    company = seed_company(fake, company_id="biz_test", members=50)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="http://whop.test") as c: ...

See `app.py` for the controls (inject, update/delete, event/deliver, serve), `webhooks.py`
for company webhooks (add_webhook, emit, health, retries, replay; `webhook_api.py` serves
them under /api/v1/webhooks) and `fixtures/` for the fact sheet's §7 objects.
"""

from __future__ import annotations

from fakes.whop import fixtures
from fakes.whop.api import SUPPORTED_VERSIONS, ApiError, Credential
from fakes.whop.app import DeliveryRecord, FakeWhop
from fakes.whop.oauth import s256
from fakes.whop.seed import ANCHOR, SeededCompany, seed_company, seed_fixtures
from fakes.whop.shapes import LEGACY_VERSION, NATIVE_VERSION
from fakes.whop.stats import FakeWhopStats, RecordedRequest
from fakes.whop.store import (
    ACCESS_STATUSES,
    MEMBERSHIP_STATUSES,
    OWNER_EMAIL,
    OWNER_NAME,
    OWNER_USER_ID,
    Company,
    Member,
    Membership,
    Payment,
    Plan,
    Product,
    User,
)
from fakes.whop.webhooks import EVENT_TYPES, Webhook, WebhookDelivery, WebhookHub

__all__ = [
    "ACCESS_STATUSES",
    "ANCHOR",
    "EVENT_TYPES",
    "LEGACY_VERSION",
    "MEMBERSHIP_STATUSES",
    "NATIVE_VERSION",
    "OWNER_EMAIL",
    "OWNER_NAME",
    "OWNER_USER_ID",
    "SUPPORTED_VERSIONS",
    "ApiError",
    "Company",
    "Credential",
    "DeliveryRecord",
    "FakeWhop",
    "FakeWhopStats",
    "Member",
    "Membership",
    "Payment",
    "Plan",
    "Product",
    "RecordedRequest",
    "SeededCompany",
    "User",
    "Webhook",
    "WebhookDelivery",
    "WebhookHub",
    "fixtures",
    "s256",
    "seed_company",
    "seed_fixtures",
]
