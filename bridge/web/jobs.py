"""Background jobs of the web app (provisioning, syncs), one at a time, with live progress.

Progress lives in memory for the admin page; the durable record is what the jobs write
themselves (`provisioning_runs`, `sync_runs`). Jobs run one after the other in submission
order; `services.run_sync` also takes a database lease, so a CLI sync or another replica
cannot run the same company at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge import services
from bridge.errors import BridgeError
from bridge.runtime import Runtime
from bridge.store.db import utcnow
from bridge.store.runs import RunKind, Trigger

log = logging.getLogger(__name__)

# What the sync engine's progress callback names, and the step each one stands for.
SYNC_STEPS: tuple[tuple[str, str], ...] = (
    ("whopProduct", "Products"),
    ("person", "People"),
    ("opportunity", "Opportunities"),
)
OBJECT_LABELS = dict(SYNC_STEPS)
PROVISION_STEP = "Provision Twenty"
KEEP_FINISHED = 20


@dataclass
class Job:
    id: int
    kind: str  # connect | provision | sync
    title: str
    steps: list[str]
    status: str = "queued"  # queued | running | succeeded | failed
    step: int = 0  # index of the step being worked on
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    message: str = ""
    error: str | None = None
    run_id: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")

    @property
    def percent(self) -> int:
        if self.status == "succeeded":
            return 100
        if not self.steps or self.status == "queued":
            return 0
        return min(99, round(100 * self.step / len(self.steps)))

    def summary(self) -> list[str]:
        """'People: 10 created, 0 updated, 0 unchanged' per synced object."""
        lines = []
        for obj, label in SYNC_STEPS:
            c = self.counts.get(obj)
            if c:
                lines.append(count_line(label, c))
        return lines

    def snapshot(self) -> dict[str, Any]:
        """JSON for /api/status: progress and counts, nothing secret."""
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "status": self.status,
            "finished": self.finished,
            "steps": self.steps,
            "step": self.step,
            "step_label": self.steps[self.step] if self.steps and self.step < len(self.steps) else None,
            "percent": self.percent,
            "message": self.message,
            "error": self.error,
            "run_id": self.run_id,
            "summary": self.summary(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def count_line(label: str, counts: dict[str, int]) -> str:
    parts = [f"{counts.get('created', 0)} created", f"{counts.get('updated', 0)} updated"]
    parts.append(f"{counts.get('unchanged', 0)} unchanged")
    for extra in ("skipped", "failed", "conflicts"):
        if counts.get(extra):
            parts.append(f"{counts[extra]} {extra}")
    return f"{label}: " + ", ".join(parts)


def _added(base: dict[str, dict[str, int]], more: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Counts of the companies synced before plus the running one's."""
    out = {o: dict(c) for o, c in base.items()}
    for obj, counts in more.items():
        for name, n in counts.items():
            out.setdefault(obj, {})[name] = out.get(obj, {}).get(name, 0) + n
    return out


class Busy(Exception):
    """A job of the same kind is already waiting or running."""


class JobRunner:
    """Runs jobs one at a time. With `background=False` a submit runs the job before returning
    (tests and single-shot use); otherwise it is an asyncio task and the page polls for it."""

    def __init__(self, runtime: Runtime, *, background: bool = True) -> None:
        self.runtime = runtime
        self.background = background
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._jobs: list[Job] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # Queries -----------------------------------------------------------------------------------

    def active(self) -> Job | None:
        """The running job, else the oldest queued one."""
        live = [j for j in self._jobs if not j.finished]
        running = [j for j in live if j.status == "running"]
        if running:
            return running[0]
        return live[0] if live else None

    def latest(self) -> Job | None:
        """The active job, else the one that finished last."""
        return self.active() or (self._jobs[-1] if self._jobs else None)

    def get(self, job_id: int) -> Job | None:
        return next((j for j in self._jobs if j.id == job_id), None)

    # Submitting ----------------------------------------------------------------------------------

    async def provision(self) -> Job:
        return await self._submit("provision", "Provision the Twenty data model", [PROVISION_STEP], self._provision)

    async def sync(self, kind: RunKind, trigger: Trigger = "admin") -> Job:
        title = "Full resync" if kind == "full" else "Sync now (reconcile)"

        async def body(job: Job) -> None:
            await self._sync(job, kind, trigger, first_step=0)

        return await self._submit(f"sync:{kind}", title, [label for _, label in SYNC_STEPS], body)

    async def connect(self, company_id: str | None = None) -> Job:
        """After Connect Whop: provision, then the first full sync (of the company just connected)."""

        async def body(job: Job) -> None:
            await self._provision(job)
            if job.status != "failed":
                await self._sync(job, "full", "connect", first_step=1, company_id=company_id)

        steps = [PROVISION_STEP, *(label for _, label in SYNC_STEPS)]
        return await self._submit("connect", "Provisioning and first full sync", steps, body)

    async def _submit(self, kind: str, title: str, steps: list[str], body: Callable[[Job], Awaitable[None]]) -> Job:
        if any(j.kind == kind and not j.finished for j in self._jobs):
            raise Busy(f"{title} is already queued or running")
        job = Job(id=next(self._ids), kind=kind, title=title, steps=steps)
        self._jobs.append(job)
        del self._jobs[: max(0, len(self._jobs) - KEEP_FINISHED - 5)]
        if self.background:
            task = asyncio.create_task(self._run(job, body), name=f"bridge-job-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            await self._run(job, body)
        return job

    async def _run(self, job: Job, body: Callable[[Job], Awaitable[None]]) -> None:
        async with self._lock:  # FIFO: asyncio.Lock wakes waiters in order
            job.status, job.started_at = "running", utcnow()
            job.message = "started"
            try:
                await body(job)
            except asyncio.CancelledError:
                job.status, job.error = "failed", "stopped because the bridge shut down; it resumes on the next sync"
                raise
            except BridgeError as exc:  # the bridge's own errors carry safe, readable text
                job.status, job.error = "failed", str(exc)
            except Exception:
                log.exception("job %s (%s) crashed", job.id, job.kind)
                job.status, job.error = "failed", "unexpected error; see the bridge's log"
            else:
                if job.status != "failed":
                    job.status = "succeeded"
            finally:
                job.finished_at = utcnow()
                if job.status == "succeeded":
                    job.step = len(job.steps)
                    job.message = "finished"
                log.info("job %s (%s) %s", job.id, job.kind, job.status)

    # Job bodies ----------------------------------------------------------------------------------

    async def _provision(self, job: Job) -> None:
        job.step, job.message = 0, "checking the Twenty data model"
        result = await services.provision_workspace(self.runtime)
        conflicts = len(result.plan.conflicts)
        job.message = f"provisioned: {len(result.applied)} change(s), {conflicts} conflict(s)"
        if conflicts and job.kind == "provision":
            job.status, job.error = "failed", f"{conflicts} conflict(s) in the Twenty workspace; see the plan"

    async def _sync(
        self, job: Job, kind: RunKind, trigger: Trigger, *, first_step: int, company_id: str | None = None
    ) -> None:
        """One company, or each active company in turn (their counts add up on the job)."""
        targets: list[str | None] = [company_id] if company_id else [*await self.runtime.companies()]
        totals: dict[str, dict[str, int]] = {}
        for target in targets or [None]:
            await self._sync_one(job, kind, trigger, first_step=first_step, company_id=target, totals=totals)

    async def _sync_one(
        self,
        job: Job,
        kind: RunKind,
        trigger: Trigger,
        *,
        first_step: int,
        company_id: str | None,
        totals: dict[str, dict[str, int]],
    ) -> None:
        steps = {obj: first_step + i for i, (obj, _) in enumerate(SYNC_STEPS)}
        job.step, job.message = first_step, "reading Whop"

        def progress(obj: str, counts: dict[str, dict[str, int]]) -> None:
            job.counts = _added(totals, counts)
            if obj in steps:
                job.step = max(job.step, steps[obj])
                job.message = count_line(OBJECT_LABELS[obj], counts.get(obj, {}))

        result = await services.run_sync(
            self.runtime, kind=kind, trigger=trigger, progress=progress, company_id=company_id
        )
        job.run_id = result.run_id
        job.counts = _added(totals, result.counts)
        totals.clear()
        totals.update(job.counts)
        failed = [p for p in result.problems if p.get("kind") == "failed"]
        if failed:
            job.message = f"{len(failed)} record(s) failed; see the run's problems"

    # Shutdown ------------------------------------------------------------------------------------

    async def wait_idle(self) -> None:
        """Until no job is queued or running (tests; graceful shutdown). Wrap in asyncio.timeout."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
