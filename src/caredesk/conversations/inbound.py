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

from sqlalchemy.orm import Session

from caredesk.contacts.actions import resolve_identity
from caredesk.conversations.models import RawInbound
from caredesk.platform.db import SQL, RetryTransaction, raw
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


_EXISTING = SQL(
    "SELECT m.id, m.conversation_id, c.contact_id FROM messages m JOIN conversations c ON c.id = m.conversation_id "
    "WHERE m.inbox_id = :inbox AND m.channel_message_id = :cmid"
)
_BY_TOKEN = SQL("SELECT id FROM conversations WHERE public_token = :token AND account_id = :a")
_OPEN_FOR_CONTACT = SQL(
    "SELECT id, status, waiting_since FROM conversations WHERE contact_id = :contact AND inbox_id = :inbox "
    "AND status != 'resolved' ORDER BY id DESC LIMIT 1"
)
_CONV_STATE = SQL("SELECT status, waiting_since FROM conversations WHERE id = :id")
_LOCK_CONTACT = SQL("SELECT id FROM contacts WHERE id = :id FOR UPDATE")
_NEW_CONVERSATION = SQL(
    "INSERT INTO conversations (account_id, contact_id, inbox_id, public_token, status, priority, subject, custom_attributes, "
    "case_brief, signals, waiting_since, last_activity_at, message_count, created_at, updated_at) VALUES "
    "(:a, :contact, :inbox, :token, 'open', 'normal', :subject, '{}', '{}', '{}', :now, :now, 0, :now, :now) RETURNING id"
)
_NEW_MESSAGE = SQL(
    "INSERT INTO messages (account_id, conversation_id, inbox_id, type, sender_type, sender_id, content, html, channel_message_id, "
    "status, meta, signals, spam, created_at) VALUES (:a, :conv, :inbox, 'incoming', 'contact', :contact, :content, :html, :cmid, "
    "'received', :meta, '{}', :false, :now) ON CONFLICT (inbox_id, channel_message_id) DO NOTHING RETURNING id"
)
_TOUCH = SQL(
    "UPDATE conversations SET last_activity_at = :now, updated_at = :now, message_count = message_count + 1, "
    "waiting_since = COALESCE(waiting_since, :now) WHERE id = :id"
)
_REOPEN = SQL(
    "UPDATE conversations SET status = 'open', snoozed_until = NULL, resolved_at = NULL WHERE id = :id"
)
_RAW = SQL(
    "INSERT INTO raw_inbound (account_id, inbox_id, message_id, content_type, body, status, received_at) "
    "VALUES (:a, :inbox, :msg, :ctype, :body, 'ok', :now)"
)
_REPLIED_TO = "SELECT conversation_id FROM messages WHERE inbox_id = {p} AND channel_message_id IN ({ids}) ORDER BY id DESC LIMIT 1"


def _existing(session: Session, inbox_id: int, channel_message_id: str) -> InboundResult | None:
    row = raw(session).one(_EXISTING, {"inbox": inbox_id, "cmid": channel_message_id})
    if row is None:
        return None
    return InboundResult(row[0], row[1], row[2], duplicate=True)


def _thread_conversation(
    session: Session, msg: Inbound, contact_id: int
) -> tuple[int | None, str | None, bool]:
    """(conversation id, its status, customer already waiting) — or (None, None, False) for a new one."""
    r = raw(session)
    cid: int | None = None
    if msg.conversation_token:
        row = r.one(_BY_TOKEN, {"token": msg.conversation_token, "a": msg.account_id})
        cid = None if row is None else int(row[0])
    if cid is None and msg.reply_to_ids:
        ids = msg.reply_to_ids[-20:]
        if r.pg:
            sql = _REPLIED_TO.format(p="%(inbox)s", ids=", ".join(f"%(r{i})s" for i in range(len(ids))))
        else:
            sql = _REPLIED_TO.format(p=":inbox", ids=", ".join(f":r{i}" for i in range(len(ids))))
        r.cur.execute(sql, {"inbox": msg.inbox_id, **{f"r{i}": v for i, v in enumerate(ids)}})
        row = r.cur.fetchone()
        cid = None if row is None else int(row[0])
    if cid is not None:
        state = r.one(_CONV_STATE, {"id": cid})
        assert state is not None
        return cid, str(state[0]), state[1] is not None
    if msg.new_thread:
        return None, None, False
    row = r.one(_OPEN_FOR_CONTACT, {"contact": contact_id, "inbox": msg.inbox_id})
    if row is None:
        return None, None, False
    return int(row[0]), str(row[1]), row[2] is not None


def receive_inbound(session: Session, msg: Inbound) -> InboundResult:
    if msg.channel_message_id:
        dup = _existing(session, msg.inbox_id, msg.channel_message_id)
        if dup is not None:
            return dup
    contact_id, _created = resolve_identity(
        session,
        msg.account_id,
        msg.identity_kind,
        msg.identity_value,
        name=msg.contact_name,
        verified=msg.identity_verified,
    )
    r = raw(session)
    if r.pg:
        # Serialise "find or open the conversation" per contact (SQLite has a single writer already).
        r.execute(_LOCK_CONTACT, {"id": contact_id})
    now = utcnow()
    ts = r.ts(now)
    conversation_id, status, _waiting = _thread_conversation(session, msg, contact_id)
    new_conversation = conversation_id is None
    if conversation_id is None:
        row = r.one(
            _NEW_CONVERSATION,
            {
                "a": msg.account_id,
                "contact": contact_id,
                "inbox": msg.inbox_id,
                "token": new_token(nbytes=15),
                "subject": msg.subject[:500],
                "now": ts,
            },
        )
        assert row is not None
        conversation_id = int(row[0])
    content = msg.text[:MAX_TEXT]
    row = r.one(
        _NEW_MESSAGE,
        {
            "a": msg.account_id,
            "conv": conversation_id,
            "inbox": msg.inbox_id,
            "contact": contact_id,
            "content": content,
            "html": msg.html,
            "cmid": msg.channel_message_id,
            "meta": r.json(msg.meta),
            "false": False,
            "now": ts,
        },
    )
    if row is None:
        # Lost a race with the same provider message (PostgreSQL): run again, find it, store nothing.
        raise RetryTransaction("duplicate inbound message")
    message_id = int(row[0])
    r.execute(_TOUCH, {"now": ts, "id": conversation_id})
    if status in ("resolved", "snoozed", "pending"):
        r.execute(_REOPEN, {"id": conversation_id})
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
        r.execute(
            _RAW,
            {
                "a": msg.account_id,
                "inbox": msg.inbox_id,
                "msg": message_id,
                "ctype": msg.raw_content_type[:127],
                "body": msg.raw_body,
                "now": ts,
            },
        )
    if new_conversation:
        record_event(
            session,
            msg.account_id,
            "conversation.created",
            {
                "id": conversation_id,
                "contact_id": contact_id,
                "inbox_id": msg.inbox_id,
                "status": "open",
                "subject": msg.subject[:500],
            },
            conversation_id=conversation_id,
            contact_id=contact_id,
        )
    elif status in ("resolved", "snoozed", "pending"):
        record_event(
            session,
            msg.account_id,
            "conversation.updated",
            {"id": conversation_id, "status": "open", "change": "reopened"},
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
            "meta": msg.meta,
            "created_at": now.isoformat() + "Z",
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                for a in msg.attachments
            ],
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
    return InboundResult(
        message_id, conversation_id, contact_id, duplicate=False, new_conversation=new_conversation
    )


def record_malformed(
    session: Session, account_id: int, inbox_id: int, body: str, content_type: str, error: str
) -> int:
    """A payload we could not parse is kept for inspection, never lost and never a crash."""
    row = RawInbound(
        account_id=account_id,
        inbox_id=inbox_id,
        content_type=content_type[:127],
        body=body,
        status="malformed",
        error=error,
    )
    session.add(row)
    session.flush()
    return row.id
