"""What `serve` runs besides the web app: the inbox worker and the scheduler.

They run on their own event loop in a background thread. The webhook endpoint's loop then never
waits behind the worker's CPU work (parsing, mapping, hashing a batch) for longer than the
interpreter's switch interval, which keeps acknowledgements fast while a burst is applied. The
runtime gives this loop its own database pool; its leases and Twenty budget are the same ones
the web loop uses (safe across loops and processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from bridge.runtime import Runtime
from bridge.scheduler import Reconciler
from bridge.worker import Worker

log = logging.getLogger(__name__)


class Background:
    """Starts and stops the worker and the scheduler with the app (Starlette lifespan)."""

    def __init__(self, runtime: Runtime, *, poll_interval: float = 1.0) -> None:
        self.runtime = runtime
        self.poll_interval = poll_interval
        self.worker: Worker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def configured(self) -> bool:
        settings = self.runtime.settings
        return settings.twenty_url is not None and settings.twenty_api_key is not None

    def wake(self) -> None:
        """Called by the webhook endpoint (on the web loop) after it stored a delivery."""
        if self._loop is not None and self.worker is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                self._loop.call_soon_threadsafe(self.worker.wake)

    async def start(self) -> None:
        if not self.configured:
            log.warning("TWENTY_URL/TWENTY_API_KEY not set: webhooks are stored but not applied")
            return
        self._thread = threading.Thread(target=self._main, name="bridge-background", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._started.wait, 30)

    async def stop(self) -> None:
        if self._thread is None or self._loop is None or self._stop is None:
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, 30)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception:  # the thread must not die silently; the web app keeps serving
            log.exception("background worker thread stopped")
        finally:
            self._started.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        twenty = self.runtime.twenty()
        self.worker = Worker(self.runtime, twenty=twenty, poll_interval=self.poll_interval)
        reconciler = Reconciler(self.runtime)
        worker_task = asyncio.create_task(self.worker.run_forever(), name="inbox-worker")
        reconciler.start()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            reconciler.stop()
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
            await twenty.aclose()
            await self.runtime.close_loop()
