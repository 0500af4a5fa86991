"""IMAP polling against a real Dovecot on loopback: resumes from the last UID, never stores twice."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from imap_tools import MailBoxUnencrypted
from sqlalchemy import update

from caredesk.channels.email.imap import poll_imap, read_cursor, schedule_polling
from caredesk.channels.models import ChannelCursor
from caredesk.services import Services
from tests.channels import dovecot
from tests.channels.helpers import counts, fixture, make_inbox, messages
from tests.conftest import AccountFixture

if not dovecot.available():
    pytest.fail("dovecot is not installed: apt-get install dovecot-imapd (the IMAP tests need a real server)")


@pytest.fixture
def imap() -> Iterator[dovecot.Dovecot]:
    d = dovecot.start()
    yield d
    d.stop()


def append(d: dovecot.Dovecot, raw: bytes) -> None:
    with MailBoxUnencrypted("127.0.0.1", d.port).login(d.user, d.password) as mb:
        mb.append(raw, "INBOX")


def mail(n: int, in_reply_to: str | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = f"Customer {n} <c{n}@example.com>" if in_reply_to is None else "ann@example.com"
    m["To"] = "support@shop.test"
    m["Subject"] = f"Question {n}" if in_reply_to is None else "Re: Order 12345 has not arrived"
    m["Message-ID"] = f"<imap-{n}@example.com>"
    if in_reply_to:
        m["In-Reply-To"] = m["References"] = f"<{in_reply_to}>"
    m.set_content(f"Message number {n}")
    return m.as_bytes()


async def test_polling_resumes_from_last_uid(
    services: Services, account: AccountFixture, imap: dovecot.Dovecot
) -> None:
    inbox_id, _ = make_inbox(
        services,
        account.id,
        "email",
        {
            "address": "support@shop.test",
            "imap_host": "127.0.0.1",
            "imap_port": imap.port,
            "imap_tls": False,
            "imap_username": imap.user,
            "imap_password": imap.password,
        },
    )
    append(imap, fixture("email_new.eml"))
    append(imap, mail(1))
    assert await poll_imap(services, inbox_id) == 2
    assert await poll_imap(services, inbox_id) == 0  # nothing new: nothing fetched, nothing stored
    assert counts(services, inbox_id)["messages"] == 2
    cursor = services.db.read_sync(read_cursor, inbox_id)
    assert cursor is not None and cursor.last_uid == 2

    # An "outage": several mails arrive while nobody polls, one of them a reply. All are fetched, once.
    append(imap, mail(2, in_reply_to="CAF=abc123.new@mail.gmail.com"))
    for n in range(3, 8):
        append(imap, mail(n))
    assert await poll_imap(services, inbox_id) == 6
    stored = messages(services, inbox_id)
    assert len(stored) == 8
    first_conv = stored[0].conversation_id
    reply = next(m for m in stored if m.channel_message_id == "imap-2@example.com")
    assert reply.conversation_id == first_conv

    # The server renumbered the folder (UIDVALIDITY changed): fetched again from UID 1, stored once.
    def forget(s: object) -> None:
        s.execute(update(ChannelCursor).where(ChannelCursor.inbox_id == inbox_id).values(value="1:99"))  # type: ignore[attr-defined]

    await services.db.write(forget)
    assert await poll_imap(services, inbox_id) == 8
    assert counts(services, inbox_id)["messages"] == 8


async def test_poll_job_runs_and_schedules_the_next(
    services: Services, account: AccountFixture, imap: dovecot.Dovecot
) -> None:
    inbox_id, _ = make_inbox(
        services,
        account.id,
        "email",
        {
            "address": "support@shop.test",
            "imap_host": "127.0.0.1",
            "imap_port": imap.port,
            "imap_tls": False,
            "imap_username": imap.user,
            "imap_password": imap.password,
        },
    )
    append(imap, mail(1))
    await services.db.write(schedule_polling, inbox_id, 60.0)
    assert services.worker is not None
    await services.worker.run_until_idle()
    assert counts(services, inbox_id)["messages"] == 1
    from sqlalchemy import select

    from caredesk.platform.jobs import Job

    pending = services.db.read_sync(
        lambda s: list(
            s.execute(select(Job.idempotency_key, Job.status).where(Job.kind == "email.imap_poll")).all()
        )
    )
    assert (f"imap:{inbox_id}:1", "queued") in [tuple(p) for p in pending]
