"""The write path alone: `Database.write(receive_inbound, ...)` with no HTTP in front.

    python bench/writer.py            # SQLite in a temp dir
    python bench/writer.py --postgres URL

Prints messages/s for one write at a time (one transaction each) and for 2,000 concurrent writes
(grouped by the batching writer into shared transactions, one SAVEPOINT per message).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.conftest import make_account  # noqa: E402

from caredesk.conversations.inbound import Inbound, receive_inbound  # noqa: E402
from caredesk.migrate import upgrade  # noqa: E402
from caredesk.platform.db import Database  # noqa: E402


async def run(db: Database, account_id: int, inbox_id: int) -> None:
    def msg(i: int) -> Inbound:
        return Inbound(
            account_id=account_id,
            inbox_id=inbox_id,
            identity_kind="email",
            identity_value=f"c{i % 500}@bench.example",
            text="hello",
            channel_message_id=f"w{i}",
        )

    await asyncio.gather(*(db.write(receive_inbound, msg(i)) for i in range(200)))  # warm-up
    t = time.perf_counter()
    for i in range(500):
        await db.write(receive_inbound, msg(10_000 + i))
    print(f"one at a time: {500 / (time.perf_counter() - t):,.0f} messages/s")
    t = time.perf_counter()
    await asyncio.gather(*(db.write(receive_inbound, msg(100_000 + i)) for i in range(2000)))
    print(f"2,000 concurrent (batched): {2000 / (time.perf_counter() - t):,.0f} messages/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", help="an empty PostgreSQL database URL")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        db = Database(args.postgres or f"sqlite:///{d}/w.db")
        upgrade(db)
        acc = make_account(db, f"writer{int(time.time()) % 100000}")
        asyncio.run(run(db, acc.id, acc.inbox_ids["api"]))
        db.close()


if __name__ == "__main__":
    main()
