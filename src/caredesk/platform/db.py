"""Engines, sessions and the write path.

Domain actions are plain synchronous functions that take a `Session`. The async web layer runs them
through `Database.write` / `Database.read`:

Every write goes through one writer thread per process that groups concurrent requests into one
transaction, each request in its own SAVEPOINT (one failing request never undoes another):
* SQLite: one thread hop per request instead of one per SQL statement; SQLite has a single writer anyway.
* PostgreSQL: group commit, one fsync per batch instead of per request. Several processes write at
  once in scaled mode; a request that loses a race on a unique key to another process (unique
  violation / serialization failure) is run again inside its savepoint, so callers never see it.

Nothing is acknowledged before `write` returns, and `write` returns only after COMMIT.
After commit the `after_commit` hooks run (event publishing, waking the job worker).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class CommitOutcome:
    """What a committed write left for after-commit hooks."""

    events: list[Any] = field(default_factory=list)
    jobs_enqueued: bool = False


AfterCommit = Callable[[CommitOutcome], Awaitable[None]]


def sync_url(url: str) -> str:
    """Accept async-style URLs from settings and use the matching sync driver."""
    url = url.replace("sqlite+aiosqlite://", "sqlite://")
    url = url.replace("postgresql+asyncpg://", "postgresql+psycopg://")
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(immediate: bool) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level; SQLAlchemy's "begin" hook below issues BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (kill -9); only an OS crash can lose the last commits.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return on_connect


def _make_engine(url: str, *, writer: bool) -> Engine:
    url = sync_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=1 if writer else 8,
            max_overflow=0 if writer else 8,
            pool_timeout=120,
        )
        event.listen(engine, "connect", _sqlite_pragmas(writer))

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front: no lock upgrade deadlocks between processes.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def insert_ignoring_conflicts(session: Session, table: Table, *index_elements: str) -> Insert:
    """`INSERT ... ON CONFLICT DO NOTHING` for the session's dialect (RELIABILITY rule 2)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(index_elements) or None)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(index_elements) or None)


def pending_outcome(session: Session) -> CommitOutcome:
    """The per-transaction collector that actions append events to."""
    outcome = session.info.get("outcome")
    if outcome is None:
        outcome = session.info["outcome"] = CommitOutcome()
    return outcome  # type: ignore[no-any-return]


class RetryTransaction(Exception):
    """Raised by an action that lost a race; the whole transaction is run again."""


@dataclass
class _Request:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: concurrent.futures.Future[tuple[Any, CommitOutcome]]


class _BatchWriter:
    """One thread, one connection, group commit: concurrent writes share one COMMIT (one fsync on
    PostgreSQL), each in its own SAVEPOINT so that a failing request undoes only itself."""

    max_batch = 128
    max_attempts = 5

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="caredesk-writer", daemon=True)
        self.thread.start()

    def submit(self, req: _Request) -> None:
        self.queue.put(req)

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Request]) -> None:
        live = [req for req in batch if req.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self._run_grouped(live)
        except _Poisoned:
            # A failed flush leaves SQLAlchemy's session unusable: nothing of this batch was committed,
            # so run each request again in a transaction of its own.
            for req in live:
                self._run_single(req)
            return
        except BaseException as exc:
            log.exception("batch commit failed")
            for req in live:
                req.future.set_exception(exc)
            return
        for req, value, outcome, err in results:
            if err is not None:
                req.future.set_exception(err)
            else:
                assert outcome is not None
                req.future.set_result((value, outcome))

    def _run_grouped(
        self, live: list[_Request]
    ) -> list[tuple[_Request, Any, CommitOutcome | None, BaseException | None]]:
        results: list[tuple[_Request, Any, CommitOutcome | None, BaseException | None]] = []
        with Session(self.engine, expire_on_commit=False) as session:
            r = raw(session)  # starts the transaction (BEGIN IMMEDIATE on SQLite)
            for req in live:
                for attempt in range(1, self.max_attempts + 1):
                    outcome = CommitOutcome()
                    session.info["outcome"] = outcome
                    r.cur.execute("SAVEPOINT item")
                    try:
                        value = req.fn(session, *req.args, **req.kwargs)
                        session.flush()
                        r.cur.execute("RELEASE item")
                        results.append((req, value, outcome, None))
                        break
                    except BaseException as exc:
                        if not session.is_active or session.in_nested_transaction():
                            raise _Poisoned() from exc
                        r.cur.execute("ROLLBACK TO item")
                        r.cur.execute("RELEASE item")
                        # Another process won a race on a unique key (PostgreSQL, several processes): its
                        # row is committed now, so running the request again finds it.
                        if attempt < self.max_attempts and _is_race(exc):
                            continue
                        results.append((req, None, None, exc))
                        break
                    finally:
                        # Detach what this request loaded (its returned objects keep their values); the next
                        # request reads fresh rows, never another request's possibly rolled-back state.
                        session.expunge_all()
            session.commit()
        return results

    def _run_single(self, req: _Request) -> None:
        for attempt in range(1, self.max_attempts + 1):
            outcome = CommitOutcome()
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    session.info["outcome"] = outcome
                    with session.begin():
                        value = req.fn(session, *req.args, **req.kwargs)
            except BaseException as exc:
                if attempt < self.max_attempts and _is_race(exc):
                    continue
                req.future.set_exception(exc)
                return
            req.future.set_result((value, outcome))
            return


class _Poisoned(Exception):
    pass


class Database:
    def __init__(self, url: str) -> None:
        self.url = sync_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine = _make_engine(self.url, writer=True)
        self.read_engine = _make_engine(self.url, writer=False) if self.is_sqlite else self.engine
        self._writer = _BatchWriter(self.engine)
        self._limiter = anyio.CapacityLimiter(16)
        self.after_commit: list[AfterCommit] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn(session, *args)` in a write transaction; return after COMMIT."""
        fut: concurrent.futures.Future[tuple[Any, CommitOutcome]] = concurrent.futures.Future()
        self._writer.submit(_Request(fn, args, kwargs, fut))
        value, outcome = await asyncio.wrap_future(fut)
        if outcome.events or outcome.jobs_enqueued:
            for hook in self.after_commit:
                try:
                    await hook(outcome)
                except Exception:
                    log.exception("after-commit hook failed")
        return value  # type: ignore[no-any-return]

    def write_sync(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """For the CLI and scripts: one transaction, no after-commit hooks."""
        with Session(self.engine, expire_on_commit=False) as session:
            session.info["outcome"] = CommitOutcome()
            with session.begin():
                return fn(session, *args, **kwargs)

    async def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        def run() -> T:
            with Session(self.read_engine, expire_on_commit=False) as session:
                return fn(session, *args, **kwargs)

        return await anyio.to_thread.run_sync(run, limiter=self._limiter)

    def read_sync(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        with Session(self.read_engine, expire_on_commit=False) as session:
            return fn(session, *args, **kwargs)

    def close(self) -> None:
        self._writer.stop()
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _is_race(exc: BaseException) -> bool:
    if isinstance(exc, RetryTransaction):
        return True
    # Wrapped by SQLAlchemy, or raised by the driver itself for `Raw` statements.
    code = (
        getattr(exc.orig, "sqlstate", None) if isinstance(exc, DBAPIError) else getattr(exc, "sqlstate", None)
    )
    # unique_violation, serialization_failure, deadlock_detected
    return code in {"23505", "40001", "40P01"}


class SQL:
    """A statement written once with `:name` parameters, kept in both drivers' styles.

    The hot paths (inbound messages, events, jobs) execute these directly on the DB-API cursor of the
    session's connection, inside the session's transaction: microseconds per statement instead of the
    tens that building and caching a SQLAlchemy expression costs.
    """

    __slots__ = ("pg", "sqlite")

    def __init__(self, text: str) -> None:
        import re

        self.sqlite = text
        self.pg = re.sub(r"(?<!:):([a-z_][a-z0-9_]*)", r"%(\1)s", text)


class Raw:
    """Cursor access to the session's current transaction, for `SQL` statements."""

    __slots__ = ("cur", "dbapi", "pg")

    def __init__(self, session: Session) -> None:
        conn = session.connection()
        self.pg = conn.dialect.name == "postgresql"
        self.dbapi = conn.connection.dbapi_connection
        self.cur = self.dbapi.cursor()  # type: ignore[union-attr]

    def execute(self, sql: SQL, params: dict[str, Any]) -> Any:
        self.cur.execute(sql.pg if self.pg else sql.sqlite, params)
        return self.cur

    def one(self, sql: SQL, params: dict[str, Any]) -> tuple[Any, ...] | None:
        self.cur.execute(sql.pg if self.pg else sql.sqlite, params)
        row = self.cur.fetchone()
        return None if row is None else tuple(row)

    def ts(self, value: Any) -> Any:
        """Timestamps as SQLAlchemy's DateTime stores them on SQLite (text); datetime objects on PostgreSQL."""
        if self.pg or value is None:
            return value
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")

    @staticmethod
    def json(value: Any) -> str:
        import orjson

        return orjson.dumps(value).decode()


def raw(session: Session) -> Raw:
    """One `Raw` per session transaction (cursor creation is cheap but not free)."""
    # Every write path opens a fresh Session per transaction, so the cached cursor is always current.
    r: Raw | None = session.info.get("raw")
    if r is None:
        r = session.info["raw"] = Raw(session)
    return r
