"""SQLite writes run inline in the event loop's thread when they can, and in the writer thread when they
can't (another connection holds the write lock); WAL checkpoints happen in the background."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from caredesk.platform.db import Database


def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'inline.db'}")
    db.write_sync(lambda s: s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")))
    return db


def _insert(s: Session, v: str) -> int:
    s.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v})
    return threading.get_ident()


async def test_writes_run_in_the_loop_thread_and_batch(tmp_path: Path) -> None:
    db = _db(tmp_path)
    try:
        here = threading.get_ident()
        threads = await asyncio.gather(*(db.write(_insert, f"v{i}") for i in range(50)))
        assert set(threads) == {here}
        assert db.read_sync(lambda s: s.execute(text("SELECT count(*) FROM t")).scalar()) == 50
    finally:
        db.close()


async def test_a_failing_write_undoes_only_itself(tmp_path: Path) -> None:
    db = _db(tmp_path)

    def boom(s: Session) -> None:
        s.execute(text("INSERT INTO t (v) VALUES ('doomed')"))
        raise ValueError("no")

    try:
        results = await asyncio.gather(
            db.write(_insert, "a"), db.write(boom), db.write(_insert, "b"), return_exceptions=True
        )
        assert isinstance(results[1], ValueError)
        rows = db.read_sync(lambda s: [r[0] for r in s.execute(text("SELECT v FROM t ORDER BY id"))])
        assert rows == ["a", "b"]
    finally:
        db.close()


async def test_a_held_lock_sends_the_write_to_the_writer_thread_and_the_loop_keeps_running(
    tmp_path: Path,
) -> None:
    db = _db(tmp_path)
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's long transaction
        write = asyncio.create_task(db.write(_insert, "waited"))
        ticks = 0
        while ticks < 20:  # the loop is not blocked: other coroutines run while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not write.done()
        other.execute("COMMIT")
        thread = await write
        assert thread != threading.get_ident()
        # Once the writer thread has let go of the connection, writes go inline again.
        while db._writer.lock.locked():
            await asyncio.sleep(0.01)
        assert await db.write(_insert, "inline") == threading.get_ident()
        rows = db.read_sync(lambda s: [r[0] for r in s.execute(text("SELECT v FROM t ORDER BY id"))])
        assert rows == ["waited", "inline"]
    finally:
        other.close()
        db.close()


async def test_checkpoints_copy_the_wal_into_the_database_file(tmp_path: Path) -> None:
    db = _db(tmp_path)
    try:
        await asyncio.gather(*(db.write(_insert, "x" * 100) for _ in range(200)))
        path = tmp_path / "inline.db"
        # `immutable=1` reads the main file only, ignoring the WAL: rows appear there once checkpointed.
        deadline = time.monotonic() + 30
        seen = 0
        while time.monotonic() < deadline:
            main = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
            try:
                seen = main.execute("SELECT count(*) FROM t").fetchone()[0]
            except sqlite3.DatabaseError:
                seen = 0
            finally:
                main.close()
            if seen == 200:
                break
            await asyncio.sleep(0.1)
        assert seen == 200
        with db.engine.connect() as conn:
            wal_auto = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert wal_auto == 0  # the committing connection never checkpoints itself
    finally:
        db.close()
