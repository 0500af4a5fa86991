"""The job worker: embedded in `caredesk serve`, or standalone with `caredesk worker`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from caredesk.platform import jobs
from caredesk.platform.db import CommitOutcome, Database

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        db: Database,
        registry: jobs.JobRegistry,
        services: Any = None,
        *,
        concurrency: int = 8,
        lease_seconds: float = 60.0,
        poll_seconds: float = 0.5,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.services = services
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self.processed = 0

    async def on_commit(self, outcome: CommitOutcome) -> None:
        """After-commit hook: new jobs were enqueued in this process; don't wait for the next poll."""
        if outcome.jobs_enqueued:
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        log.info("worker %s started", self.worker_id)
        while not self._stop.is_set():
            free = self.concurrency - len(self._running)
            claimed: list[jobs.ClaimedJob] = []
            if free > 0:
                try:
                    claimed = await self.db.write(
                        jobs.claim, self.worker_id, free, self.lease_seconds, self.registry.kinds or None
                    )
                except Exception:
                    log.exception("claiming jobs failed")
            for job in claimed:
                task = asyncio.create_task(self._execute(job))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if claimed and len(claimed) == free:
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
        if self._running:
            await asyncio.wait(self._running, timeout=10)

    async def run_until_idle(self, max_rounds: int = 1000) -> int:
        """For tests and the CLI: process what is ready now, then return the count."""
        done = 0
        for _ in range(max_rounds):
            claimed = await self.db.write(jobs.claim, self.worker_id, self.concurrency, self.lease_seconds)
            if not claimed:
                break
            await asyncio.gather(*(self._execute(j) for j in claimed))
            done += len(claimed)
        return done

    async def _execute(self, job: jobs.ClaimedJob) -> None:
        handler = self.registry.get(job.kind)
        try:
            if handler is None:
                raise jobs.PermanentFailure(f"no handler for job kind {job.kind!r}")
            await asyncio.wait_for(
                handler(jobs.JobContext(job, self.db, self.services)), timeout=self.lease_seconds * 0.9
            )
        except jobs.RetryLater as exc:
            await self._fail(job, str(exc) or "retry later", retry_after=exc.after)
        except jobs.PermanentFailure as exc:
            await self._fail(job, str(exc), permanent=True)
        except Exception as exc:
            log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
            await self._fail(job, f"{type(exc).__name__}: {exc}")
        else:
            await self.db.write(jobs.complete, job.id, self.worker_id)
            self.processed += 1

    async def _fail(
        self, job: jobs.ClaimedJob, error: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        try:
            await self.db.write(
                jobs.fail, job.id, self.worker_id, error, retry_after=retry_after, permanent=permanent
            )
        except Exception:
            log.exception(
                "recording failure of job %s failed; its lease will expire and it will run again", job.id
            )
