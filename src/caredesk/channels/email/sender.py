"""Outbound mail through SMTP (aiosmtplib) with the headers that make threading work everywhere.

The Message-ID is derived from the delivery job's idempotency key: a retried job sends a mail with
the same Message-ID, which mail stores and our own inbound dedupe recognise as the same message.
"""

from __future__ import annotations

import asyncio
import hashlib
from email.message import EmailMessage
from email.utils import formataddr, formatdate

import aiosmtplib

from caredesk.channels.base import RateLimit
from caredesk.conversations.delivery import Outbound, Receipt
from caredesk.platform.jobs import PermanentFailure, RetryLater
from caredesk.platform.storage import Storage


def build_reply(
    msg: Outbound, idempotency_key: str, files: list[tuple[str, str, bytes]] | None = None
) -> tuple[EmailMessage, str]:
    """The reply as a mail; `files` (name, content type, bytes) are attached."""
    cfg = msg.inbox_config
    address = str(cfg.get("address") or "")
    to = msg.identities.get("email")
    if "@" not in address:
        raise PermanentFailure("the email inbox needs an address")
    if not to:
        raise PermanentFailure("the contact has no email address")
    domain = address.split("@", 1)[1]
    reply_domain = str(cfg.get("reply_domain") or domain)
    mid = f"{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}"
    em = EmailMessage()
    em["From"] = formataddr((str(cfg.get("from_name") or ""), address))
    em["To"] = formataddr((msg.contact_name, to))
    em["Subject"] = f"Re: {msg.subject}" if msg.subject else "Your message"
    em["Message-ID"] = f"<{mid}>"
    em["Date"] = formatdate(usegmt=True)
    # Replies come back to this conversation whatever the customer's client does with the headers.
    em["Reply-To"] = formataddr(
        (str(cfg.get("from_name") or ""), f"reply+{msg.conversation_token}@{reply_domain}")
    )
    refs = [r for r in msg.reply_to_ids if "@" in r and not r.startswith("sha256:")][-20:]
    if refs:
        em["In-Reply-To"] = f"<{refs[-1]}>"
        em["References"] = " ".join(f"<{r}>" for r in refs)
    em.set_content(msg.content)
    for name, ctype, data in files or []:
        maintype, _, subtype = ctype.partition("/")
        em.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=name)
    return em, mid


class EmailSender:
    sends_files = True  # attached to the mail

    def __init__(self, per_second: float = 20.0, storage: Storage | None = None) -> None:
        self.limit = RateLimit(per_second)
        self.storage = storage

    async def _files(self, msg: Outbound) -> list[tuple[str, str, bytes]]:
        if not msg.attachments or self.storage is None:
            return []
        storage = self.storage
        return [
            (
                str(a["filename"]),
                str(a["content_type"]),
                await asyncio.to_thread(storage.get, str(a["storage_key"])),
            )
            for a in msg.attachments
        ]

    async def send(self, msg: Outbound, idempotency_key: str) -> Receipt:
        em, mid = build_reply(msg, idempotency_key, await self._files(msg))
        cfg = msg.inbox_config
        host = str(cfg.get("smtp_host") or "")
        if not host:
            raise PermanentFailure("the email inbox needs smtp_host for outbound mail")
        await self.limit.acquire(f"smtp:{msg.inbox_id}")
        try:
            await aiosmtplib.send(
                em,
                hostname=host,
                port=int(cfg.get("smtp_port") or 25),
                username=cfg.get("smtp_username") or None,
                password=cfg.get("smtp_password") or None,
                start_tls=bool(cfg.get("smtp_starttls", False)),
                use_tls=bool(cfg.get("smtp_tls", False)),
                timeout=30,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentFailure(f"the mail server refused the recipient: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentFailure(
                    f"the mail server refused the message: {exc.code} {exc.message}"
                ) from exc
            raise RetryLater(f"the mail server answered {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise RetryLater(f"the mail server is unreachable: {type(exc).__name__}") from exc
        return Receipt(channel_message_id=mid, status="sent")
