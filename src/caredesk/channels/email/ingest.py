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
from caredesk.conversations.models import Conversation, Message


def ingest_email(session: Session, msg: Inbound) -> InboundResult:
    """`receive_inbound`, after one more threading rule: a "Re:" mail whose threading headers point
    nowhere we know (some Outlook setups drop them) joins the sender's open conversation with the same
    subject. A new subject from the same person still opens a new conversation."""
    original = str(msg.meta.get("email", {}).get("subject", ""))
    if msg.conversation_token is None and is_reply_subject(original):
        known = (
            bool(msg.reply_to_ids)
            and session.execute(
                select(Message.id)
                .where(Message.inbox_id == msg.inbox_id, Message.channel_message_id.in_(msg.reply_to_ids))
                .limit(1)
            ).first()
            is not None
        )
        if not known:
            contact_id = find_contact_by_identity(
                session, msg.account_id, msg.identity_kind, msg.identity_value
            )
            if contact_id is not None:
                token = session.execute(
                    select(Conversation.public_token)
                    .where(
                        Conversation.contact_id == contact_id,
                        Conversation.inbox_id == msg.inbox_id,
                        Conversation.status != "resolved",
                        Conversation.subject == normalize_subject(original),
                    )
                    .order_by(Conversation.id.desc())
                    .limit(1)
                ).scalar()
                if token:
                    msg.conversation_token = token
    return receive_inbound(session, msg)


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
