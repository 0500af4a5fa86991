"""Autogenerate a migration from the models: `python scripts/makemigration.py "message"`.

Runs against a fresh SQLite database upgraded to head, so the diff is exactly what the models add.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from caredesk.migrate import alembic_config, upgrade
from caredesk.platform.db import Database


def main() -> None:
    message = sys.argv[1] if len(sys.argv) > 1 else "change"
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'm.db'}")
        upgrade(db)
        cfg = alembic_config(db)
        command.revision(cfg, message=message, autogenerate=True)
        db.close()


if __name__ == "__main__":
    main()
