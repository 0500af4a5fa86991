"""`receive_inbound`: the one entry through which every channel hands a customer's message to the core.

In one transaction: dedupe on (inbox, channel message id), resolve the identity to a contact,
attach to the open conversation or open one, store the message (and the raw payload), record the
events and enqueue the follow-up job. The caller acknowledges to the provider only after this
returns, i.e. after COMMIT (RELIABILITY rules 1 and 2).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from caredesk.contacts.actions import resolve_identity
from caredesk.conversations.models import Conversation, Message, RawInbound
from caredesk.platform.db import RetryTransaction, insert_ignoring_conflicts
from caredesk.platform.events import record_event
from caredesk.platform.jobs import enqueue
from caredesk.platform.models import utcnow
from caredesk.platform.security import new_token

MAX_TEXT = 65_536


@dataclass(slots=True)
class InboundAttachment:
    filename: str
    content_type: str
    size: int
    storage_key: str


@dataclass(slots=True)
class Inbound:
    account_id: int
    inbox_id: int
    identity_kind: str
    identity_value: str  # already normalised by the adapter
    text: str
    channel_message_id: str | None = None
    contact_name: str | None = None
    identity_verified: bool = False
    html: str | None = None
    subject: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    attachments: list[InboundAttachment] = field(default_factory=list)
    # Threading: a conversation the channel already knows (reply token), or channel message ids this
    # message replies to (email In-Reply-To/References); `new_thread` forces a new conversation.
    conversation_token: str | None = None
    reply_to_ids: list[str] = field(default_factory=list)
    new_thread: bool = False
    raw_body: str | None = None
    raw_content_type: str = ""
    sent_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class InboundResult:
    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool = False
    new_conversation: bool = False


def _existing(session: Session, inbox_id: int, channel_message_id: str) -> InboundResult | None:
    row = session.execute(
        select(Message.id, Message.conversation_id, Conversation.contact_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.inbox_id == inbox_id, Message.channel_message_id == channel_message_id)
    ).first()
    if row is None:
        return None
    return InboundResult(row[0], row[1], row[2], duplicate=True)


def _thread_conversation(session: Session, msg: Inbound, contact_id: int) -> int | None:
    if msg.conversation_token:
        cid = session.execute(
            select(Conversation.id).where(
                Conversation.public_token == msg.conversation_token, Conversation.account_id == msg.account_id
            )
        ).scalar()
        if cid is not None:
            return int(cid)
    if msg.reply_to_ids:
        cid = session.execute(
            select(Message.conversation_id)
            .where(Message.inbox_id == msg.inbox_id, Message.channel_message_id.in_(msg.reply_to_ids[-20:]))
            .order_by(Message.id.desc())
            .limit(1)
        ).scalar()
        if cid is not None:
            return int(cid)
    if msg.new_thread:
        return None
    cid = session.execute(
        select(Conversation.id)
        .where(
            Conversation.contact_id == contact_id,
            Conversation.inbox_id == msg.inbox_id,
            Conversation.status != "resolved",
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    ).scalar()
    return None if cid is None else int(cid)


def receive_inbound(session: Session, msg: Inbound) -> InboundResult:
    if msg.channel_message_id:
        dup = _existing(session, msg.inbox_id, msg.channel_message_id)
        if dup is not None:
            return dup
    contact_id, _created = resolve_identity(
        session, msg.account_id, msg.identity_kind, msg.identity_value, name=msg.contact_name, verified=msg.identity_verified
    )
    if session.get_bind().dialect.name == "postgresql":
        # Serialise "find or open the conversation" per contact (SQLite has a single writer already).
        session.execute(text("SELECT id FROM contacts WHERE id = :id FOR UPDATE"), {"id": contact_id})
    now = utcnow()
    conversation_id = _thread_conversation(session, msg, contact_id)
    new_conversation = conversation_id is None
    if conversation_id is None:
        conversation_id = session.execute(
            Conversation.__table__.insert()  # type: ignore[attr-defined]
            .values(
                account_id=msg.account_id,
                contact_id=contact_id,
                inbox_id=msg.inbox_id,
                public_token=new_token(nbytes=15),
                status="open",
                priority="normal",
                subject=msg.subject[:500],
                custom_attributes={},
                case_brief={},
                signals={},
                waiting_since=now,
                last_activity_at=now,
                message_count=0,
                created_at=now,
                updated_at=now,
            )
            .returning(Conversation.id)
        ).scalar_one()
    content = msg.text[:MAX_TEXT]
    message_id = session.execute(
        insert_ignoring_conflicts(session, Message.__table__, "inbox_id", "channel_message_id")  # type: ignore[arg-type]
        .values(
            account_id=msg.account_id,
            conversation_id=conversation_id,
            inbox_id=msg.inbox_id,
            type="incoming",
            sender_type="contact",
            sender_id=contact_id,
            content=content,
            html=msg.html,
            channel_message_id=msg.channel_message_id,
            status="received",
            meta=msg.meta,
            signals={},
            spam=False,
            created_at=now,
        )
        .returning(Message.id)
    ).scalar()
    if message_id is None:
        # Lost a race with the same provider message (PostgreSQL): run again, find it, store nothing.
        raise RetryTransaction("duplicate inbound message")
    status_values: dict[str, Any] = {
        "last_activity_at": now,
        "updated_at": now,
        "message_count": Conversation.message_count + 1,
    }
    if not new_conversation:
        conv = session.execute(
            select(Conversation.status, Conversation.waiting_since).where(Conversation.id == conversation_id)
        ).one()
        if conv[0] in ("resolved", "snoozed", "pending"):
            status_values.update(status="open", snoozed_until=None, resolved_at=None)
        if conv[1] is None:
            status_values["waiting_since"] = now
    session.execute(update(Conversation).where(Conversation.id == conversation_id).values(**status_values))
    if msg.attachments:
        from caredesk.conversations.models import Attachment

        for a in msg.attachments:
            session.add(
                Attachment(
                    account_id=msg.account_id,
                    message_id=message_id,
                    filename=a.filename[:255],
                    content_type=a.content_type[:127],
                    size=a.size,
                    storage_key=a.storage_key,
                )
            )
    if msg.raw_body is not None:
        session.execute(
            RawInbound.__table__.insert().values(  # type: ignore[attr-defined]
                account_id=msg.account_id,
                inbox_id=msg.inbox_id,
                message_id=message_id,
                content_type=msg.raw_content_type[:127],
                body=msg.raw_body,
                status="ok",
                received_at=now,
            )
        )
    if new_conversation:
        record_event(
            session,
            msg.account_id,
            "conversation.created",
            {"id": conversation_id, "contact_id": contact_id, "inbox_id": msg.inbox_id, "status": "open", "subject": msg.subject[:500]},
            conversation_id=conversation_id,
            contact_id=contact_id,
        )
    record_event(
        session,
        msg.account_id,
        "message.created",
        {
            "id": message_id,
            "conversation_id": conversation_id,
            "inbox_id": msg.inbox_id,
            "type": "incoming",
            "sender_type": "contact",
            "sender_id": contact_id,
            "content": content,
            "html": msg.html,
            "status": "received",
            "created_at": now.isoformat() + "Z",
            "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size} for a in msg.attachments],
        },
        conversation_id=conversation_id,
        contact_id=contact_id,
    )
    enqueue(
        session,
        "message.process",
        {"message_id": message_id, "conversation_id": conversation_id},
        account_id=msg.account_id,
        key=f"process:{message_id}",
    )
    return InboundResult(message_id, conversation_id, contact_id, duplicate=False, new_conversation=new_conversation)


def record_malformed(session: Session, account_id: int, inbox_id: int, body: str, content_type: str, error: str) -> int:
    """A payload we could not parse is kept for inspection, never lost and never a crash."""
    row = RawInbound(
        account_id=account_id, inbox_id=inbox_id, content_type=content_type[:127], body=body, status="malformed", error=error
    )
    session.add(row)
    session.flush()
    return row.id
