"""Durable jobs: enqueue with the data, lease, retry with backoff, Retry-After, dead letters, and a worker
killed between claim and completion (the job runs again after the lease expires, to completion once)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from caredesk.platform import jobs
from caredesk.platform.db import Database
from caredesk.platform.models import utcnow
from caredesk.platform.worker import Worker
from caredesk.services import Services
from tests.conftest import REPO, AccountFixture

pytestmark = pytest.mark.postgres


def _job(s, job_id: int) -> jobs.Job:  # type: ignore[no-untyped-def]
    return s.get(jobs.Job, job_id)


async def test_enqueue_is_part_of_the_transaction(services: Services, account: AccountFixture) -> None:
    def w(s):  # type: ignore[no-untyped-def]
        jobs.enqueue(s, "t.noop", {"a": 1}, account_id=account.id, key="k-1")
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await services.db.write(w)
    count = await services.db.read(
        lambda s: len(list(s.execute(select(jobs.Job).where(jobs.Job.kind == "t.noop")).scalars()))
    )
    assert count == 0


async def test_idempotency_key_gives_one_job(services: Services, account: AccountFixture) -> None:
    for _ in range(3):
        await services.db.write(lambda s: jobs.enqueue(s, "t.noop", {}, account_id=account.id, key="same"))
    rows = await services.db.read(
        lambda s: list(s.execute(select(jobs.Job.id).where(jobs.Job.idempotency_key == "same")).scalars())
    )
    assert len(rows) == 1


async def test_retry_backoff_retry_after_and_dead_letter(services: Services, account: AccountFixture) -> None:
    registry = jobs.JobRegistry()
    calls: list[int] = []

    async def flaky(ctx: jobs.JobContext) -> None:
        calls.append(ctx.job.attempts)
        raise jobs.RetryLater("provider said 429", after=120)

    registry.add("t.flaky", flaky)
    worker = Worker(services.db, registry, None, lease_seconds=30)
    await services.db.write(
        lambda s: jobs.enqueue(s, "t.flaky", {}, account_id=account.id, key="f", max_attempts=2)
    )
    assert await worker.run_until_idle() == 1
    job = await services.db.read(
        lambda s: s.execute(select(jobs.Job).where(jobs.Job.idempotency_key == "f")).scalar_one()
    )
    assert job.status == jobs.QUEUED and job.attempts == 1
    # Retry-After of 120 s is honoured: not claimable now.
    assert job.run_at >= utcnow() + dt.timedelta(seconds=100)
    assert await worker.run_until_idle() == 0
    # Make it due, run again: the second attempt is the last; the job is dead and listed.
    await services.db.write(lambda s: setattr(_job(s, job.id), "run_at", utcnow()))
    assert await worker.run_until_idle() == 1
    dead = await services.db.read(jobs.dead_letters, account.id)
    assert [d.id for d in dead] == [job.id]
    assert "429" in (dead[0].last_error or "")
    assert calls == [1, 2]
    # One-click retry puts it back with a fresh budget.
    assert await services.db.write(jobs.retry_dead, job.id, account.id)
    job2 = await services.db.read(_job, job.id)
    assert job2.status == jobs.QUEUED and job2.attempts == 0


async def test_permanent_failure_is_dead_at_once(services: Services, account: AccountFixture) -> None:
    registry = jobs.JobRegistry()

    async def bad(ctx: jobs.JobContext) -> None:
        raise jobs.PermanentFailure("400 invalid recipient")

    registry.add("t.bad", bad)
    await services.db.write(lambda s: jobs.enqueue(s, "t.bad", {}, account_id=account.id, key="b"))
    await Worker(services.db, registry, None).run_until_idle()
    dead = await services.db.read(jobs.dead_letters, account.id)
    assert len(dead) == 1 and dead[0].attempts == 1


def test_backoff_grows_and_is_jittered() -> None:
    samples = [jobs.backoff_seconds(a) for a in range(1, 8) for _ in range(20)]
    assert all(s > 0 for s in samples)
    firsts = {round(jobs.backoff_seconds(3), 6) for _ in range(50)}
    assert len(firsts) > 1  # jitter spreads retries
    assert max(jobs.backoff_seconds(1) for _ in range(50)) < min(jobs.backoff_seconds(8) for _ in range(50))


async def test_lost_lease_completion_is_ignored(services: Services, account: AccountFixture) -> None:
    await services.db.write(lambda s: jobs.enqueue(s, "t.x", {}, account_id=account.id, key="x"))
    claimed = await services.db.write(jobs.claim, "w1", 10, 0.0)  # lease already expired
    assert len(claimed) == 1
    again = await services.db.write(jobs.claim, "w2", 10, 30.0)
    assert [j.id for j in again] == [claimed[0].id]
    assert not await services.db.write(jobs.complete, claimed[0].id, "w1")
    assert await services.db.write(jobs.complete, claimed[0].id, "w2")


WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from caredesk.platform import jobs
    from caredesk.platform.db import Database
    from caredesk.platform.worker import Worker

    db = Database(sys.argv[1]); marks = sys.argv[2]; lease = float(sys.argv[3]); hang = sys.argv[4] == "hang"
    registry = jobs.JobRegistry()

    async def work(ctx):
        with open(marks, "a") as f:
            f.write(f"start {ctx.job.id}\\n")
        if hang:
            await asyncio.sleep(3600)   # killed here, between claim and completion
        with open(marks, "a") as f:
            f.write(f"done {ctx.job.id}\\n")

    registry.add("t.work", work)
    asyncio.run(Worker(db, registry, None, lease_seconds=lease, worker_id=f"w{os.getpid()}").run_until_idle())
    """
)


async def test_worker_killed_between_claim_and_completion(
    services: Services, account: AccountFixture, tmp_path: Path
) -> None:
    await services.db.write(lambda s: jobs.enqueue(s, "t.work", {}, account_id=account.id, key="kill-me"))
    marks = tmp_path / "marks.txt"
    script = tmp_path / "w.py"
    script.write_text(WORKER_SCRIPT)
    url = services.db.url
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, str(script), url, str(marks), "2", "hang"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (marks.exists() and "start" in marks.read_text()):
        time.sleep(0.05)
    assert marks.exists(), "worker never started the job"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    job = await services.db.read(
        lambda s: s.execute(select(jobs.Job).where(jobs.Job.idempotency_key == "kill-me")).scalar_one()
    )
    assert job.status == jobs.RUNNING  # the dead worker still "holds" it
    # A second worker picks it up once the 2 s lease has expired, and completes it once.
    time.sleep(2.2)
    done = subprocess.run([sys.executable, str(script), url, str(marks), "30", "finish"], env=env, timeout=60)
    assert done.returncode == 0
    lines = marks.read_text().split()
    assert lines.count("done") == 1
    assert lines.count("start") == 2
    job = await services.db.read(_job, job.id)
    assert job.status == jobs.DONE and job.attempts == 2
    # Nothing left to do: running the worker again changes nothing.
    subprocess.run(
        [sys.executable, str(script), url, str(marks), "30", "finish"], env=env, timeout=60, check=True
    )
    assert marks.read_text().split().count("done") == 1


def test_database_urls_normalised() -> None:
    from caredesk.platform.db import sync_url

    assert sync_url("sqlite+aiosqlite:///x.db") == "sqlite:///x.db"
    assert sync_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert isinstance(Database, type)
