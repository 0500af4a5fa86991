"""IMAP polling of an existing mailbox (imap-tools), resuming from the last UID seen.

The cursor (UIDVALIDITY and the last UID) is stored per inbox and advanced in the same transaction
as each message, so after any outage, however long, polling resumes exactly where it stopped
(RELIABILITY rule 5). A changed UIDVALIDITY means the server renumbered the folder: we start over
from UID 1 and the Message-ID dedupe stores nothing twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from imap_tools import AND, MailBox, MailBoxUnencrypted
from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.models import Inbox
from caredesk.channels.base import InboxInfo, Malformed, inbox_info
from caredesk.channels.email.ingest import ingest_email
from caredesk.channels.email.parse import parse_email
from caredesk.channels.models import ChannelCursor
from caredesk.conversations.inbound import record_malformed
from caredesk.platform.db import insert_ignoring_conflicts
from caredesk.platform.jobs import JobContext, RetryLater, enqueue
from caredesk.platform.models import utcnow

BATCH = 200
CURSOR = "imap"


@dataclass(frozen=True, slots=True)
class Cursor:
    uidvalidity: int
    last_uid: int


def read_cursor(session: Session, inbox_id: int) -> Cursor | None:
    value = session.execute(
        select(ChannelCursor.value).where(ChannelCursor.inbox_id == inbox_id, ChannelCursor.name == CURSOR)
    ).scalar()
    if not value:
        return None
    validity, _, uid = value.partition(":")
    return Cursor(int(validity), int(uid))


def write_cursor(session: Session, inbox_id: int, cursor: Cursor) -> None:
    value = f"{cursor.uidvalidity}:{cursor.last_uid}"
    session.execute(
        insert_ignoring_conflicts(session, ChannelCursor.__table__, "inbox_id", "name").values(  # type: ignore[arg-type]
            inbox_id=inbox_id, name=CURSOR, value=value, updated_at=utcnow()
        )
    )
    row = session.execute(
        select(ChannelCursor).where(ChannelCursor.inbox_id == inbox_id, ChannelCursor.name == CURSOR)
    ).scalar_one()
    row.value, row.updated_at = value, utcnow()


def _load(session: Session, inbox_id: int) -> tuple[InboxInfo, Cursor | None] | None:
    inbox = session.get(Inbox, inbox_id)
    if inbox is None or inbox.channel != "email":
        return None
    return inbox_info(inbox), read_cursor(session, inbox_id)


def _fetch(cfg: dict[str, Any], cursor: Cursor | None) -> tuple[int, list[tuple[int, bytes]]]:
    """Blocking: (UIDVALIDITY, [(uid, raw message)]) for UIDs after the cursor, oldest first."""
    host, port = str(cfg["imap_host"]), int(cfg.get("imap_port") or 993)
    box_cls = MailBox if cfg.get("imap_tls", port == 993) else MailBoxUnencrypted
    folder = str(cfg.get("imap_folder") or "INBOX")
    with box_cls(host, port, timeout=30).login(
        str(cfg["imap_username"]), str(cfg["imap_password"]), folder
    ) as box:
        status = box.folder.status(folder, ["UIDVALIDITY"])
        validity = int(status["UIDVALIDITY"])
        start = 1 if cursor is None or cursor.uidvalidity != validity else cursor.last_uid + 1
        out: list[tuple[int, bytes]] = []
        # "N:*" returns the highest message even when its UID is below N: filter on our side.
        for m in box.fetch(AND(uid=f"{start}:*"), mark_seen=False, bulk=BATCH, limit=BATCH):
            uid = int(m.uid or 0)
            if uid >= start:
                out.append((uid, m.obj.as_bytes()))
        out.sort()
        return validity, out


def _store(
    session: Session, inbox: InboxInfo, validity: int, uid: int, inbound: Any, error: str | None, raw: bytes
) -> None:
    if inbound is not None:
        ingest_email(session, inbound)
    else:
        record_malformed(
            session,
            inbox.account_id,
            inbox.id,
            raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
            "message/rfc822",
            error or "",
        )
    write_cursor(session, inbox.id, Cursor(validity, uid))


async def poll_imap(services: Any, inbox_id: int) -> int:
    """Fetch what arrived since the last poll; returns how many messages were handled."""
    loaded = await services.db.read(_load, inbox_id)
    if loaded is None:
        return 0
    inbox, cursor = loaded
    if not inbox.config.get("imap_host"):
        return 0
    try:
        validity, messages = await asyncio.to_thread(_fetch, inbox.config, cursor)
    except (OSError, TimeoutError) as exc:
        raise RetryLater(f"IMAP server unreachable: {type(exc).__name__}") from exc
    for uid, raw in messages:
        try:
            inbound, error = parse_email(inbox, raw, services.storage), None
        except Malformed as exc:
            inbound, error = None, str(exc)
        await services.db.write(_store, inbox, validity, uid, inbound, error, raw)
    return len(messages)


async def imap_poll_job(ctx: JobContext) -> None:
    """`email.imap_poll`: poll once, then schedule the next poll (one pending poll per inbox)."""
    inbox_id = int(ctx.job.payload["inbox_id"])
    n = int(ctx.job.payload.get("n", 0))
    handled = await poll_imap(ctx.services, inbox_id)
    interval = 1.0 if handled >= BATCH else float(ctx.job.payload.get("interval", 30))

    def next_poll(session: Session) -> None:
        enqueue(
            session,
            "email.imap_poll",
            {"inbox_id": inbox_id, "n": n + 1, "interval": interval},
            key=f"imap:{inbox_id}:{n + 1}",
            delay=interval,
        )

    await ctx.db.write(next_poll)


def schedule_polling(session: Session, inbox_id: int, interval: float = 30.0) -> None:
    """Start polling an inbox (idempotent while a first poll is pending)."""
    enqueue(
        session,
        "email.imap_poll",
        {"inbox_id": inbox_id, "n": 0, "interval": interval},
        key=f"imap:{inbox_id}:0",
    )
