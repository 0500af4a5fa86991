"""Durable jobs: the transactional outbox for every side effect (RELIABILITY rule 4).

A job is enqueued in the same transaction as the data it concerns, so either both exist or neither.
Workers claim jobs with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer);
a worker that dies mid-job leaves its lease to expire and another worker runs the job again.
Handlers must therefore be idempotent; each job carries an idempotency key for the providers.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, and_, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from caredesk.platform.db import SQL, pending_outcome, raw
from caredesk.platform.models import Base, BigId, utcnow

QUEUED, RUNNING, DONE, DEAD = "queued", "running", "done", "dead"


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=8)
    run_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    locked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_jobs_ready", "status", "run_at"),
        Index("ix_jobs_account_status", "account_id", "status"),
    )


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    account_id: int | None
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    max_attempts: int


class RetryLater(Exception):
    """A transient failure; `after` seconds (e.g. a provider's Retry-After) is honoured."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class PermanentFailure(Exception):
    """No retry will help (a 4xx from a provider, invalid data): dead-letter at once."""


_ENQUEUE = SQL(
    "INSERT INTO jobs (account_id, kind, payload, idempotency_key, status, attempts, max_attempts, run_at, created_at) "
    "VALUES (:a, :kind, :payload, :key, 'queued', 0, :max, :run_at, :now) ON CONFLICT (idempotency_key) DO NOTHING"
)


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    account_id: int | None = None,
    key: str | None = None,
    delay: float = 0.0,
    max_attempts: int = 8,
) -> None:
    """Add a job to the current transaction. A repeated `key` is ignored (exactly one job per key)."""
    r = raw(session)
    now = utcnow()
    r.execute(
        _ENQUEUE,
        {
            "a": account_id,
            "kind": kind,
            "payload": r.json(payload),
            "key": key,
            "max": max_attempts,
            "run_at": r.ts(now + dt.timedelta(seconds=delay)),
            "now": r.ts(now),
        },
    )
    pending_outcome(session).jobs_enqueued = True


def claim(
    session: Session, worker_id: str, limit: int, lease_seconds: float, kinds: list[str] | None = None
) -> list[ClaimedJob]:
    now = utcnow()
    ready = or_(
        and_(Job.status == QUEUED, Job.run_at <= now),
        and_(Job.status == RUNNING, Job.locked_until < now),  # an abandoned lease: its worker died
    )
    q = select(Job.id).where(ready).order_by(Job.run_at, Job.id).limit(limit)
    if kinds:
        q = q.where(Job.kind.in_(kinds))
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    ids = list(session.execute(q).scalars())
    if not ids:
        return []
    rows = session.execute(
        update(Job)
        .where(Job.id.in_(ids))
        .values(
            status=RUNNING,
            locked_by=worker_id,
            locked_until=now + dt.timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
        )
        .returning(
            Job.id, Job.account_id, Job.kind, Job.payload, Job.idempotency_key, Job.attempts, Job.max_attempts
        )
    ).all()
    return sorted(
        (ClaimedJob(r[0], r[1], r[2], r[3], r[4] or f"job:{r[0]}", r[5], r[6]) for r in rows),
        key=lambda j: j.id,
    )


def complete(session: Session, job_id: int, worker_id: str) -> bool:
    """Mark done only if this worker still holds the lease; False means another worker took over."""
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.locked_by == worker_id, Job.status == RUNNING)
        .values(status=DONE, finished_at=utcnow(), locked_until=None, last_error=None)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def backoff_seconds(attempt: int, *, base: float = 2.0, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter in [0.5x, 1.5x] so retries of many jobs spread out."""
    raw: float = min(cap, base ** max(0, attempt - 1))
    return raw * (0.5 + random.random())


def fail(
    session: Session,
    job_id: int,
    worker_id: str,
    error: str,
    *,
    retry_after: float | None = None,
    permanent: bool = False,
) -> str:
    job = session.get(Job, job_id)
    if job is None or job.locked_by != worker_id or job.status != RUNNING:
        return "lost-lease"
    job.last_error = error[:4000]
    job.locked_until = None
    if permanent or job.attempts >= job.max_attempts:
        job.status = DEAD
        job.finished_at = utcnow()
        return DEAD
    delay = backoff_seconds(job.attempts)
    if retry_after is not None:
        delay = max(delay, retry_after)
    job.status = QUEUED
    job.run_at = utcnow() + dt.timedelta(seconds=delay)
    pending_outcome(session).jobs_enqueued = True
    return QUEUED


def retry_dead(session: Session, job_id: int, account_id: int | None = None) -> bool:
    """The agent's one-click retry: a dead job is queued again with a fresh attempt budget."""
    q = update(Job).where(Job.id == job_id, Job.status == DEAD)
    if account_id is not None:
        q = q.where(Job.account_id == account_id)
    res = session.execute(q.values(status=QUEUED, run_at=utcnow(), attempts=0, finished_at=None))
    if res.rowcount:  # type: ignore[attr-defined]
        pending_outcome(session).jobs_enqueued = True
    return bool(res.rowcount)  # type: ignore[attr-defined]


def dead_letters(session: Session, account_id: int | None = None, limit: int = 100) -> list[Job]:
    q = select(Job).where(Job.status == DEAD).order_by(Job.id.desc()).limit(limit)
    if account_id is not None:
        q = q.where(Job.account_id == account_id)
    return list(session.execute(q).scalars())


@dataclass(frozen=True, slots=True)
class JobContext:
    job: ClaimedJob
    db: Any  # caredesk.platform.db.Database; Any avoids an import cycle for handlers' typing
    services: Any  # the app's service container (adapters, models); see caredesk.app


Handler = Callable[[JobContext], Awaitable[None]]


class JobRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, kind: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self._handlers[kind] = fn
            return fn

        return deco

    def add(self, kind: str, fn: Handler) -> None:
        self._handlers[kind] = fn

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)


# Handlers of the domain register here at import time (see caredesk.app.register_handlers).
registry = JobRegistry()
