"""Outbound delivery through the outbox: the `message.deliver` job hands a reply to its channel's sender.

Senders are chosen by `caredesk.app` per channel (a domain module never imports a channel). A
sender raises `RetryLater` (429/5xx/timeouts) or `PermanentFailure` (4xx); the job system retries
with backoff, and a message whose delivery finally fails is marked failed, visibly, with the error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.accounts.models import Inbox
from caredesk.contacts.models import Contact, Identity
from caredesk.conversations.actions import emit_message_updated, get_conversation, mark_delivery
from caredesk.conversations.attachments import link_token
from caredesk.conversations.models import Attachment, Conversation, Message
from caredesk.platform import jobs
from caredesk.platform.audit import audit
from caredesk.platform.errors import Conflict, NotFound
from caredesk.platform.jobs import JobContext, PermanentFailure, RetryLater
from caredesk.platform.security import new_token


@dataclass(slots=True)
class Outbound:
    account_id: int
    message_id: int
    conversation_id: int
    conversation_token: str
    inbox_id: int
    inbox_config: dict[str, Any]
    content: str
    contact_name: str
    identities: dict[str, str]  # kind -> value of the contact's identities
    subject: str = ""
    reply_to_ids: list[str] = field(default_factory=list)  # channel ids of earlier messages (email threading)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Receipt:
    channel_message_id: str | None
    status: str = "sent"  # sent | delivered


class Sender(Protocol):
    """Delivers one reply. `msg.attachments` lists the reply's files: filename, content_type, size,
    storage_key and `url` (a signed download link for the customer, `caredesk.conversations.attachments`).
    A sender that carries the files itself (email attaches them; the API channel's webhook lists them)
    says so with a class attribute `sends_files = True`; for every other sender the links are appended
    to the text ("Attachments:" then one "name: url" line per file), so an SMS or a chat message still
    gets the customer to the file."""

    async def send(self, msg: Outbound, idempotency_key: str) -> Receipt: ...


def with_file_links(msg: Outbound) -> Outbound:
    """The reply's text with a download link per attachment, for channels that cannot carry files."""
    if not msg.attachments:
        return msg
    lines = [f"{a['filename']}: {a['url']}" for a in msg.attachments if a.get("url")]
    if not lines:
        return msg
    text = "\n".join([msg.content, "", "Attachments:", *lines]) if msg.content else "\n".join(lines)
    return replace(msg, content=text)


def load_outbound(session: Session, message_id: int) -> tuple[Outbound, str] | None:
    m = session.get(Message, message_id)
    if m is None or m.type != "outgoing":
        return None
    conv = session.get(Conversation, m.conversation_id)
    inbox = session.get(Inbox, m.inbox_id)
    contact = session.get(Contact, conv.contact_id) if conv else None
    if conv is None or inbox is None or contact is None:
        return None
    idents = {
        i.kind: i.value
        for i in session.execute(
            select(Identity).where(Identity.contact_id == contact.id).order_by(Identity.id)
        ).scalars()
    }
    thread = list(
        session.execute(
            select(Message.channel_message_id)
            .where(
                Message.conversation_id == conv.id,
                Message.channel_message_id.is_not(None),
                Message.id != m.id,
            )
            .order_by(Message.id)
        ).scalars()
    )
    atts = [
        {
            "id": a.id,
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "storage_key": a.storage_key,
        }
        for a in session.execute(
            select(Attachment).where(Attachment.message_id == m.id).order_by(Attachment.id)
        ).scalars()
    ]
    out = Outbound(
        account_id=m.account_id,
        message_id=m.id,
        conversation_id=conv.id,
        conversation_token=conv.public_token,
        inbox_id=inbox.id,
        inbox_config=inbox.config,
        content=m.content,
        contact_name=contact.name,
        identities=idents,
        subject=conv.subject,
        reply_to_ids=[t for t in thread if t],
        attachments=atts,
        meta=m.meta,
    )
    return out, inbox.channel if m.status in ("queued", "failed") else "__done__"


async def deliver_message(ctx: JobContext) -> None:
    message_id = int(ctx.job.payload["message_id"])
    loaded = await ctx.db.read(load_outbound, message_id)
    if loaded is None:
        return
    out, channel = loaded
    if channel == "__done__":
        return  # delivered by an earlier attempt whose completion was lost
    sender: Sender | None = (ctx.services.senders if ctx.services else {}).get(channel)
    if sender is None:
        # Web chat and API inboxes: the customer's stream is the delivery (files included: the widget
        # shows them with its own download links).
        await ctx.db.write(mark_delivery, out.account_id, message_id, "sent")
        return
    if out.attachments and ctx.services is not None:
        settings = ctx.services.settings
        base = str(settings.public_url).rstrip("/")
        for a in out.attachments:
            a["url"] = f"{base}/files/{link_token(settings.secret_key, out.account_id, int(a['id']))}"
        if not getattr(sender, "sends_files", False):
            out = with_file_links(out)
    try:
        receipt = await sender.send(out, ctx.job.idempotency_key)
    except PermanentFailure as exc:
        await ctx.db.write(mark_delivery, out.account_id, message_id, "failed", error=str(exc))
        raise
    except Exception as exc:
        if ctx.job.attempts >= ctx.job.max_attempts:
            await ctx.db.write(
                mark_delivery,
                out.account_id,
                message_id,
                "failed",
                error=f"gave up after {ctx.job.attempts} attempts: {exc}",
            )
        if isinstance(exc, RetryLater):
            raise
        raise RetryLater(str(exc)) from exc
    await ctx.db.write(
        mark_delivery,
        out.account_id,
        message_id,
        receipt.status,
        channel_message_id=receipt.channel_message_id,
    )


# ---------------------------------------------------------------- retries of failed deliveries


def _requeue(session: Session, m: Message) -> None:
    """failed -> queued (the one way a delivery status goes back), so the retry's outcome is shown."""
    m.status = "queued"
    m.error = None
    session.flush()
    emit_message_updated(session, m)


def retry_message(session: Session, actor: Actor, conversation_id: int, message_id: int) -> Message:
    """An agent's Retry on a failed outgoing message: its delivery job runs again and really reaches the
    provider (the dead job is revived with a fresh attempt budget; a job that had finished, because
    the provider reported the failure later, is replaced by a new one with a new idempotency key)."""
    conv = get_conversation(session, actor.account_id, conversation_id)
    m = session.get(Message, message_id)
    if m is None or m.account_id != actor.account_id or m.conversation_id != conv.id or m.type != "outgoing":
        raise NotFound("message not found")
    if m.status != "failed":
        raise Conflict(f"only a failed message can be sent again (this one is {m.status})")
    key = f"deliver:{m.id}"
    job = session.execute(select(jobs.Job).where(jobs.Job.idempotency_key == key)).scalar_one_or_none()
    _requeue(session, m)
    if job is not None and job.status == jobs.DEAD:
        jobs.retry_dead(session, job.id, actor.account_id)
    elif job is None or job.status == jobs.DONE:
        jobs.enqueue(
            session,
            "message.deliver",
            {"message_id": m.id},
            account_id=actor.account_id,
            key=f"{key}:retry:{new_token(nbytes=6)}",
        )
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "message.retried",
        "message",
        m.id,
        {"conversation_id": conv.id},
    )
    return m


def retry_job(session: Session, account_id: int, job_id: int) -> bool:
    """Retry a dead letter of this account; a failed reply's message goes back to queued with it."""
    job = session.get(jobs.Job, job_id)
    if job is None or job.account_id != account_id or not jobs.retry_dead(session, job_id, account_id):
        return False
    if job.kind == "message.deliver" and isinstance(job.payload.get("message_id"), int):
        m = session.get(Message, job.payload["message_id"])
        if m is not None and m.account_id == account_id and m.status == "failed":
            _requeue(session, m)
    return True
