"""Writing an inbound mail: the core's threading plus the subject fallback for clients that drop headers,
and the lookups that map a recipient address to an inbox."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.models import Inbox
from caredesk.channels.base import InboxInfo, inbox_info
from caredesk.channels.email.parse import REPLY_TOKEN, is_reply_subject, normalize_subject
from caredesk.contacts.actions import find_contact_by_identity
from caredesk.conversations.inbound import Inbound, InboundResult, receive_inbound
from caredesk.conversations.models import Conversation
from caredesk.platform.db import SQL, raw


def ingest_email(session: Session, msg: Inbound) -> InboundResult:
    """`receive_inbound`, after one more threading rule: a "Re:" mail whose threading headers point
    nowhere we know (some Outlook setups drop them) joins the sender's open conversation with the same
    subject. A new subject from the same person still opens a new conversation."""
    original = str(msg.meta.get("email", {}).get("subject", ""))
    if msg.conversation_token is None and is_reply_subject(original):
        r = raw(session)
        known = any(
            r.one(_KNOWN_ID, {"inbox": msg.inbox_id, "cmid": cmid}) is not None
            for cmid in msg.reply_to_ids[-20:]
        )
        if not known:
            contact_id = find_contact_by_identity(
                session, msg.account_id, msg.identity_kind, msg.identity_value
            )
            if contact_id is not None:
                row = r.one(
                    _OPEN_WITH_SUBJECT,
                    {"contact": contact_id, "inbox": msg.inbox_id, "subject": normalize_subject(original)},
                )
                if row is not None:
                    msg.conversation_token = str(row[0])
    return receive_inbound(session, msg)


# Precompiled (caredesk.platform.db.SQL): they run for every "Re:" mail.
_KNOWN_ID = SQL("SELECT 1 FROM messages WHERE inbox_id = :inbox AND channel_message_id = :cmid")
_OPEN_WITH_SUBJECT = SQL(
    "SELECT public_token FROM conversations WHERE contact_id = :contact AND inbox_id = :inbox "
    "AND status != 'resolved' AND subject = :subject ORDER BY id DESC LIMIT 1"
)


def inbox_for_recipient(session: Session, address: str) -> InboxInfo | None:
    """The email inbox a recipient address belongs to: its own address, or a reply+<token>@ address."""
    addr = address.strip().strip("<>").lower()
    m = REPLY_TOKEN.search(address)
    if m:
        row = session.execute(
            select(Inbox)
            .join(Conversation, Conversation.inbox_id == Inbox.id)
            .where(Conversation.public_token == m.group(1))
        ).scalar_one_or_none()
        if row is not None and row.channel == "email":
            return inbox_info(row)
    for inbox in session.execute(select(Inbox).where(Inbox.channel == "email")).scalars():
        if str(inbox.config.get("address", "")).lower() == addr:
            return inbox_info(inbox)
    return None
