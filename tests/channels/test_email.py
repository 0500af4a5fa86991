"""Email: parsing (threading headers, quotes, signatures, HTML, attachments, machines), the SMTP server,
outbound SMTP with threading headers, and the whole round trip."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import pytest
from aiosmtpd.smtp import SMTP

from caredesk.channels.base import InboxInfo
from caredesk.channels.email import server as smtp_server
from caredesk.channels.email.parse import normalize_subject, parse_email, visible_text
from caredesk.services import Services
from tests.channels.helpers import counts, fixture, make_inbox, messages
from tests.conftest import AccountFixture, free_port

INBOX = InboxInfo(
    id=1, account_id=1, channel="email", public_token="t", config={"address": "support@shop.test"}
)


def test_new_mail_parsed_with_sanitized_html() -> None:
    m = parse_email(INBOX, fixture("email_new.eml"), None)
    assert m.identity_value == "ann@example.com" and m.contact_name == "Ann Berger"
    assert m.channel_message_id == "CAF=abc123.new@mail.gmail.com"
    assert m.subject == "Order 12345 has not arrived" and m.new_thread and not m.reply_to_ids
    assert m.text.startswith("Hello,") and "check?" in m.text
    assert (
        m.html is not None and "<script" not in m.html and "onerror" not in m.html and "order 12345" in m.html
    )
    assert "automated" not in m.meta


def test_outlook_reply_strips_history_and_keeps_the_original() -> None:
    m = parse_email(INBOX, fixture("email_outlook_reply.eml"), None)
    assert m.text == "Yes, it is still missing. I was home all day.\n\nAnn Berger"
    assert "Did the courier leave a note?" in m.meta["full_text"]
    assert m.subject == "Order 12345 has not arrived"


def test_gmail_quote_and_signature_are_stripped() -> None:
    text = "Thanks, that fixed it.\n\nBest,\nAnn\n-- \nAnn Smith | ACME\n\nOn Tue, Mar 4, 2025 at 10:00 AM Support <support@shop.test> wrote:\n> Did you try restarting?\n"
    assert visible_text(text) == "Thanks, that fixed it.\n\nBest,\nAnn"
    assert visible_text("Sure.\n\nSent from my iPhone\n") == "Sure."


@pytest.mark.parametrize(
    "subject", ["Re: Order 5", "RE: RE: Order 5", "AW: Order 5", "Fwd: Order 5", "Re[2]: Order 5", "Order 5"]
)
def test_subject_prefixes(subject: str) -> None:
    assert normalize_subject(subject) == "Order 5"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("email_auto_reply.eml", "auto_reply"), ("email_bounce.eml", "bounce"), ("email_list.eml", "list")],
)
def test_machines_are_flagged_never_answered(name: str, kind: str) -> None:
    m = parse_email(INBOX, fixture(name), None)
    assert m.meta["automated"]["kind"] == kind and m.meta["no_auto_reply"] is True


def test_attachment_kept_and_signature_stripped(services: Services) -> None:
    m = parse_email(INBOX, fixture("email_attachment.eml"), services.storage)
    assert m.text == "See attached."
    assert [(a.filename, a.content_type, a.size) for a in m.attachments] == [("damage.png", "image/png", 70)]
    assert services.storage.get(m.attachments[0].storage_key).startswith(b"\x89PNG")


class Sink:
    """A loopback SMTP server standing in for the customer's mail provider: it keeps what arrives."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.rcpts: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.mails.append(msg)
        self.rcpts.append(list(envelope.rcpt_tos))
        return "250 OK"


async def test_round_trip_smtp_in_agent_reply_out_customer_reply_back(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    sink = Sink()
    loop = asyncio.get_running_loop()
    sink_server = await loop.create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    sink_port = sink_server.sockets[0].getsockname()[1]
    inbox_id, _ = make_inbox(
        services,
        account.id,
        "email",
        {
            "address": "support@shop.test",
            "from_name": "Shop Support",
            "smtp_host": "127.0.0.1",
            "smtp_port": sink_port,
        },
    )
    port = free_port()
    inbound = await smtp_server.start(services, "127.0.0.1", port)
    try:
        # 1. The customer writes in through our SMTP port (a real SMTP client); 250 means committed.
        await aiosmtplib.send(
            fixture("email_new.eml"),
            sender="ann@example.com",
            recipients=["support@shop.test"],
            hostname="127.0.0.1",
            port=port,
        )
        [first] = messages(services, inbox_id)
        conv_id = first.conversation_id
        # Redelivery of the same mail (a server that retried after a lost 250) stores nothing new.
        await aiosmtplib.send(
            fixture("email_new.eml"),
            sender="ann@example.com",
            recipients=["support@shop.test"],
            hostname="127.0.0.1",
            port=port,
        )
        assert counts(services, inbox_id)["messages"] == 1
        # Unknown recipients are refused at RCPT.
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await aiosmtplib.send(
                fixture("email_new.eml"),
                sender="ann@example.com",
                recipients=["nobody@shop.test"],
                hostname="127.0.0.1",
                port=port,
            )

        # 2. The agent replies in the API; the delivery job sends it by SMTP.
        r = await client.post(
            f"/api/v1/conversations/{conv_id}/messages",
            json={"content": "It left our warehouse today."},
            headers=account.auth,
        )
        assert r.status_code == 201, r.text
        assert services.worker is not None
        await services.worker.run_until_idle()
        [out] = sink.mails
        assert sink.rcpts == [["ann@example.com"]]
        conv = (await client.get(f"/api/v1/conversations/{conv_id}", headers=account.auth)).json()
        token = services.db.read_sync(
            lambda s: s.execute(
                __import__("sqlalchemy").text("SELECT public_token FROM conversations WHERE id=:i"),
                {"i": conv_id},
            ).scalar()
        )
        assert out["In-Reply-To"] == "<CAF=abc123.new@mail.gmail.com>"
        assert "<CAF=abc123.new@mail.gmail.com>" in out["References"]
        assert out["Subject"] == f"Re: {conv['subject']}"
        assert out["Reply-To"].addresses[0].addr_spec == f"reply+{token}@shop.test"
        assert out.get_content().strip() == "It left our warehouse today."
        reply_mid = out["Message-ID"].strip("<>")
        sent = next(m for m in messages(services, inbox_id) if m.id == r.json()["id"])
        assert sent.status == "sent" and sent.channel_message_id == reply_mid

        # 3. The customer answers from Gmail (to the Reply-To, with In-Reply-To) -> the same conversation.
        answer = EmailMessage()
        answer["From"] = "Ann Berger <ann@example.com>"
        answer["To"] = out["Reply-To"]
        answer["Subject"] = "Re: " + out["Subject"]
        answer["Message-ID"] = "<CAF=answer-2@mail.gmail.com>"
        answer["In-Reply-To"] = out["Message-ID"]
        answer["References"] = out["References"] + " " + out["Message-ID"]
        answer.set_content(
            "Great, thank you!\n\nOn Tue, Mar 4, 2025 Shop Support <support@shop.test> wrote:\n> It left our warehouse today.\n"
        )
        await aiosmtplib.send(answer, hostname="127.0.0.1", port=port)
        last = messages(services, inbox_id)[-1]
        assert last.conversation_id == conv_id and last.content == "Great, thank you!"

        # 4. An Outlook reply that lost its threading headers but keeps "RE: <subject>" -> same conversation.
        await aiosmtplib.send(
            fixture("email_outlook_reply.eml"),
            sender="ann@example.com",
            recipients=["support@shop.test"],
            hostname="127.0.0.1",
            port=port,
        )
        assert messages(services, inbox_id)[-1].conversation_id == conv_id

        # 5. A new subject from the same person opens a new conversation.
        new = EmailMessage()
        new["From"], new["To"], new["Subject"] = (
            "ann@example.com",
            "support@shop.test",
            "Invoice address change",
        )
        new["Message-ID"] = "<new-topic@example.com>"
        new.set_content("Please change my invoice address.")
        await aiosmtplib.send(new, hostname="127.0.0.1", port=port)
        assert messages(services, inbox_id)[-1].conversation_id != conv_id
        assert counts(services, inbox_id)["conversations"] == 2
    finally:
        inbound.close()
        sink_server.close()


async def test_outbound_smtp_refusal_is_permanent_and_visible(
    client: httpx.AsyncClient, services: Services, account: AccountFixture
) -> None:
    class Refuse:
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            return "550 5.1.1 mailbox unavailable"

    loop = asyncio.get_running_loop()
    refusing = await loop.create_server(lambda: SMTP(Refuse()), "127.0.0.1", 0)
    inbox_id, _ = make_inbox(
        services,
        account.id,
        "email",
        {
            "address": "help@shop.test",
            "smtp_host": "127.0.0.1",
            "smtp_port": refusing.sockets[0].getsockname()[1],
        },
    )
    try:
        from caredesk.channels.base import InboxInfo as Info
        from caredesk.channels.email.ingest import ingest_email

        info = Info(inbox_id, account.id, "email", "t", {"address": "help@shop.test"})
        res = await services.db.write(ingest_email, parse_email(info, fixture("email_new.eml"), None))
        r = await client.post(
            f"/api/v1/conversations/{res.conversation_id}/messages",
            json={"content": "hi"},
            headers=account.auth,
        )
        assert services.worker is not None
        await services.worker.run_until_idle()
        m = next(m for m in messages(services, inbox_id) if m.id == r.json()["id"])
        assert m.status == "failed" and "refused the recipient" in (m.error or "")
    finally:
        refusing.close()
