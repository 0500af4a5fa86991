"""Engines, sessions and the write path.

Domain actions are plain synchronous functions that take a `Session`. The async web layer runs them
through `Database.write` / `Database.read`:

Every write goes through one writer thread per process that groups concurrent requests into one
transaction, each request in its own SAVEPOINT (one failing request never undoes another):
* SQLite: one thread hop per request instead of one per SQL statement; SQLite has a single writer anyway.
* PostgreSQL: group commit, one fsync per batch instead of per request. Several processes write at
  once in scaled mode; a request that loses a race on a unique key to another process (unique
  violation / serialization failure) is run again inside its savepoint, so callers never see it.

On SQLite the batch normally runs in the event loop's own thread instead ("inline"): SQLite statements
take microseconds of CPU and no network, and handing each request to another thread and back cost more
than the write itself (the two threads then fight over the GIL at every statement). The loop never waits
for a lock there: when another process holds SQLite's write lock, or the writer thread is busy, the batch
goes to the writer thread, which waits. Checkpoints (the one fsync) run in a background thread.

Nothing is acknowledged before `write` returns, and `write` returns only after COMMIT.
After commit the `after_commit` hooks run (event publishing, waking the job worker).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio
from sqlalchemy import Connection, Engine, Table, create_engine, event
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
        if immediate:
            # Checkpoints (which fsync) run in Database's checkpointer thread, not in the committing one.
            cur.execute("PRAGMA wal_autocheckpoint=0")
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
            # The writer keeps one connection for its batches (`_BatchWriter.session`); one more is there for
            # migrations and maintenance, which take SQLite's lock like any other writer.
            pool_size=1 if writer else 8,
            max_overflow=1 if writer else 8,
            pool_timeout=120,
        )
        event.listen(engine, "connect", _sqlite_pragmas(writer))

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front: no lock upgrade deadlocks between processes.
            # On the driver's connection directly: this runs once per batch, and SQLAlchemy's statement
            # machinery costs more than these statements themselves.
            dbapi = conn.connection.driver_connection
            if writer and getattr(_inline_thread, "active", False):
                # The event loop must not sleep in SQLite's busy handler: fail at once, the writer thread waits.
                dbapi.execute("PRAGMA busy_timeout=0")
                try:
                    dbapi.execute("BEGIN IMMEDIATE")
                finally:
                    dbapi.execute("PRAGMA busy_timeout=30000")
                return
            dbapi.execute("BEGIN IMMEDIATE" if writer else "BEGIN")

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


_inline_thread = threading.local()  # `active` while a batch runs inline in the event loop's thread


class _LoopFuture:
    """An asyncio future behind the part of `concurrent.futures.Future` the writer uses; safe to complete
    from the writer thread too (a batch the loop handed over)."""

    __slots__ = ("fut", "loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fut: asyncio.Future[tuple[Any, CommitOutcome]] = loop.create_future()
        self.thread = threading.get_ident()

    def set_running_or_notify_cancel(self) -> bool:
        return not self.fut.cancelled()

    def _set(self, value: Any, exc: BaseException | None) -> None:
        if self.fut.done():
            return
        if exc is not None:
            self.fut.set_exception(exc)
        else:
            self.fut.set_result(value)

    def set_result(self, value: tuple[Any, CommitOutcome]) -> None:
        if threading.get_ident() == self.thread:
            self._set(value, None)
        else:
            self.loop.call_soon_threadsafe(self._set, value, None)

    def set_exception(self, exc: BaseException) -> None:
        if threading.get_ident() == self.thread:
            self._set(None, exc)
        else:
            self.loop.call_soon_threadsafe(self._set, None, exc)


@dataclass
class _Request:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: concurrent.futures.Future[tuple[Any, CommitOutcome]] | _LoopFuture


class _BatchWriter:
    """One thread, one connection, group commit: concurrent writes share one COMMIT (one fsync on
    PostgreSQL), each in its own SAVEPOINT so that a failing request undoes only itself."""

    max_batch = 128
    max_attempts = 5

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        # Held while the one writer connection is in use (by the thread, inline, or write_sync).
        self.lock = threading.Lock()
        # SQLite: run a batch without a SAVEPOINT per request (two statements each), and only when one of
        # them fails, run it again with them. PostgreSQL keeps them: races between processes retry there.
        self.optimistic = engine.dialect.name == "sqlite"
        # SQLite: every batch runs on one Connection kept for the process. Checking one out of the pool and
        # back in (with its reset) per batch cost more than SQLite's own BEGIN and COMMIT.
        self._conn: Connection | None = None
        self.thread = threading.Thread(target=self._run, name="caredesk-writer", daemon=True)
        self.thread.start()

    def submit(self, req: _Request) -> None:
        self.queue.put(req)

    def session(self) -> Session:
        """A Session on the writer's connection; hold `lock` while using it."""
        if not self.optimistic:
            return Session(self.engine, expire_on_commit=False)
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = self.engine.connect()
        return Session(bind=self._conn, expire_on_commit=False)

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def try_inline(self, batch: list[_Request]) -> bool:
        """Run the batch in the calling thread if the connection and SQLite's lock are free right now."""
        if not self.queue.empty() or not self.lock.acquire(blocking=False):
            return False
        _inline_thread.active = True
        try:
            self._run_batch(batch, locked=True)
        except _Busy:
            return False
        finally:
            _inline_thread.active = False
            self.lock.release()
        return True

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

    def _run_batch(self, batch: list[_Request], locked: bool = False) -> None:
        if not locked:
            with self.lock:
                self._run_batch(batch, locked=True)
            return
        live = [req for req in batch if req.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            try:
                results = self._run_grouped(live, savepoints=not self.optimistic)
            except _Optimism:
                # Something failed in a batch run without savepoints: nothing was kept; again, each
                # request in its own savepoint so that only the failing one fails.
                results = self._run_grouped(live, savepoints=True)
        except _Busy:
            raise
        except _Poisoned:
            # A failed flush leaves SQLAlchemy's session unusable: nothing of this batch was committed,
            # so run each request again in a transaction of its own (waiting for the lock if need be).
            inline, _inline_thread.active = getattr(_inline_thread, "active", False), False
            try:
                for req in live:
                    self._run_single(req)
            finally:
                _inline_thread.active = inline
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
        self, live: list[_Request], savepoints: bool = True
    ) -> list[tuple[_Request, Any, CommitOutcome | None, BaseException | None]]:
        results: list[tuple[_Request, Any, CommitOutcome | None, BaseException | None]] = []
        with self.session() as session:
            try:
                r = raw(session)  # starts the transaction (BEGIN IMMEDIATE on SQLite)
            except Exception as exc:  # the driver's own error: BEGIN runs on the driver connection
                if getattr(_inline_thread, "active", False) and "locked" in str(exc):
                    raise _Busy() from exc
                raise
            if not savepoints:
                for req in live:
                    outcome = CommitOutcome()
                    session.info["outcome"] = outcome
                    try:
                        value = req.fn(session, *req.args, **req.kwargs)
                        session.flush()
                    except BaseException as exc:
                        raise _Optimism() from exc  # leaving the block rolls the whole batch back
                    finally:
                        if session.identity_map:
                            session.expunge_all()
                    results.append((req, value, outcome, None))
                session.commit()
                return results
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
                        if session.identity_map:
                            session.expunge_all()
            session.commit()
        return results

    def _run_single(self, req: _Request) -> None:
        for attempt in range(1, self.max_attempts + 1):
            outcome = CommitOutcome()
            try:
                with self.session() as session:
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


class _Optimism(Exception):
    """A request failed in a batch run without savepoints (SQLite): the batch is run again with them."""


class _Busy(Exception):
    """SQLite's write lock is held by another connection: the inline batch goes to the writer thread."""


class Database:
    def __init__(self, url: str, *, inline_writes: bool = True) -> None:
        self.url = sync_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine = _make_engine(self.url, writer=True)
        self.read_engine = _make_engine(self.url, writer=False) if self.is_sqlite else self.engine
        self._writer = _BatchWriter(self.engine)
        self._limiter = anyio.CapacityLimiter(16)
        self.after_commit: list[AfterCommit] = []
        self.inline = inline_writes and self.is_sqlite
        self._pending: list[_Request] = []
        self._checkpointer = _Checkpointer(self.url) if self.is_sqlite else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn(session, *args)` in a write transaction; return after COMMIT."""
        if self.inline:
            loop = asyncio.get_running_loop()
            lf = _LoopFuture(loop)
            self._pending.append(_Request(fn, args, kwargs, lf))
            if len(self._pending) == 1:
                # Requests arriving in this turn of the loop share the batch.
                loop.call_soon(self._flush_inline)
            value, outcome = await lf.fut
        else:
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

    def _flush_inline(self) -> None:
        batch, self._pending = self._pending, []
        if not self._writer.try_inline(batch):
            for req in batch:
                self._writer.submit(req)

    def write_sync(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """For the CLI and scripts: one transaction, no after-commit hooks."""
        with self._writer.lock, self._writer.session() as session:
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
        self._writer.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


class _Checkpointer:
    """Copies SQLite's WAL back into the database file every half second (PASSIVE: never blocks readers or
    the writer). The writer connection does no checkpoints of its own, so no commit waits for an fsync."""

    interval = 0.5

    def __init__(self, url: str) -> None:
        path = url.split("///", 1)[1] if "///" in url else ""
        self.path = path if path and path != ":memory:" and not path.startswith("file:") else None
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        if self.path is not None:
            self.thread = threading.Thread(target=self._run, name="caredesk-checkpoint", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        import sqlite3

        assert self.path is not None
        conn: sqlite3.Connection | None = None
        while not self._stop.wait(self.interval):
            try:
                if conn is None:
                    conn = sqlite3.connect(
                        self.path, timeout=5, isolation_level=None, check_same_thread=False
                    )
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except Exception:
                log.warning("WAL checkpoint failed; retrying", exc_info=True)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


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
        return value.isoformat(" ", "microseconds")  # == strftime("%Y-%m-%d %H:%M:%S.%f"), 3x faster

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
