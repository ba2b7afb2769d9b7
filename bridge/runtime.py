"""What `serve` runs besides the web app: the inbox worker and the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.config import Settings
from bridge.scheduler import Reconciler
from bridge.services import Transports, twenty_data_client, whop_client_factory
from bridge.twenty.data import TwentyDataClient
from bridge.worker import Worker

log = logging.getLogger(__name__)


class Background:
    """Starts and stops the worker and the scheduler with the app (Starlette lifespan)."""

    def __init__(self, settings: Settings, store: AsyncEngine, transports: Transports | None = None) -> None:
        self.settings = settings
        self.store = store
        self.transports = transports or Transports()
        self.twenty: TwentyDataClient | None = None
        self.worker: Worker | None = None
        self.reconciler: Reconciler | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def configured(self) -> bool:
        return self.settings.twenty_url is not None and self.settings.twenty_api_key is not None

    def wake(self) -> None:
        """Called by the webhook endpoint after it stored a delivery."""
        if self.worker is not None:
            self.worker.wake()

    async def start(self) -> None:
        if not self.configured:
            log.warning("TWENTY_URL/TWENTY_API_KEY not set: webhooks are stored but not applied")
            return
        self.twenty = twenty_data_client(self.settings, self.transports)
        self.worker = Worker(
            settings=self.settings,
            store=self.store,
            twenty=self.twenty,
            whop_for=whop_client_factory(self.settings, self.store, self.transports),
        )
        self._task = asyncio.create_task(self.worker.run_forever(), name="inbox-worker")
        self.reconciler = Reconciler(self.settings, self.store, transports=self.transports)
        self.reconciler.start()

    async def stop(self) -> None:
        if self.reconciler is not None:
            self.reconciler.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.twenty is not None:
            await self.twenty.aclose()
