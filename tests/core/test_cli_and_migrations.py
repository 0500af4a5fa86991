"""The command line (real processes) and the migrations (upgrade from nothing; no drift from the models)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from caredesk.migrate import upgrade
from caredesk.models import Base
from caredesk.platform.db import Database
from tests.conftest import REPO


def _cli(tmp: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CAREDESK_DATABASE_URL": f"sqlite:///{tmp / 'cli.db'}",
        "CAREDESK_DATA_DIR": str(tmp),
    }
    return subprocess.run(
        [sys.executable, "-m", "caredesk.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
    )


def test_migrate_createadmin_demo(tmp_path: Path) -> None:
    r = _cli(tmp_path, "migrate")
    assert r.returncode == 0 and "revision" in r.stdout
    r = _cli(
        tmp_path,
        "createadmin",
        "--email",
        "boss@shop.test",
        "--account",
        "Shop",
        "--slug",
        "shop",
        "--password",
        "long-enough-pw",
    )
    assert r.returncode == 0, r.stderr
    r = _cli(
        tmp_path, "createadmin", "--email", "boss@shop.test", "--slug", "shop", "--password", "long-enough-pw"
    )
    assert r.returncode != 0 and "exists" in r.stderr and "Traceback" not in r.stderr
    r = _cli(tmp_path, "createadmin", "--email", "weak@shop.test", "--slug", "shop", "--password", "short")
    assert r.returncode != 0 and "8 characters" in r.stderr
    r = _cli(tmp_path, "demo", "--conversations", "40")
    assert r.returncode == 0, r.stderr
    assert "40 conversations" in r.stdout and "caredesk-demo" in r.stdout
    r = _cli(tmp_path, "demo")
    assert r.returncode == 0 and "already present" in r.stdout
    r = _cli(tmp_path, "worker", "--once")
    assert r.returncode == 0 and "processed" in r.stdout


def test_unknown_command_is_a_clear_error(tmp_path: Path) -> None:
    r = _cli(tmp_path, "frobnicate")
    assert r.returncode != 0 and "No such command" in r.stderr


def test_models_and_migrations_do_not_drift(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'drift.db'}")
    upgrade(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    db.close()
    assert diff == [], f"models differ from migrations; generate one with scripts/makemigration.py: {diff}"
