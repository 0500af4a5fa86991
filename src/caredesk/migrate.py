"""Alembic, driven from code: `upgrade` brings any database to the newest schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from caredesk.platform.db import Database

MIGRATIONS = Path(__file__).parent / "platform" / "migrations"


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["engine"] = db.engine
    return cfg


def upgrade(db: Database, revision: str = "heads") -> None:
    cfg = alembic_config(db)
    if db.dialect == "postgresql":
        # Several processes may start at once: one migrates, the others wait.
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(727274)"))
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(727274)"))
                conn.commit()
        return
    command.upgrade(cfg, revision)


def current(db: Database) -> str:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return ", ".join(MigrationContext.configure(conn).get_current_heads()) or "none"
