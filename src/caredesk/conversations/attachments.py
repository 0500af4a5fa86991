"""Files on messages: the rows of a reply's attachments, their JSON, and signed download links.

A link is for channels that cannot carry a file themselves (SMS, WhatsApp, Telegram, Messenger): the
customer gets a URL that names one attachment of one account, signed with the install's secret and
valid for `LINK_MAX_AGE`; nothing else can be reached with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.conversations.inbound import InboundAttachment
from caredesk.conversations.models import Attachment
from caredesk.platform.errors import NotFound
from caredesk.platform.security import Signer

LINK_MAX_AGE = 30 * 86400
_LINK_SALT = "caredesk.attachment.link"


def add_attachments(
    session: Session, account_id: int, message_id: int, files: list[InboundAttachment]
) -> list[Attachment]:
    rows = [
        Attachment(
            account_id=account_id,
            message_id=message_id,
            filename=f.filename[:255],
            content_type=f.content_type[:127],
            size=f.size,
            storage_key=f.storage_key,
        )
        for f in files
    ]
    session.add_all(rows)
    session.flush()
    return rows


def attachments_json(session: Session, message_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """message id -> its files in order (`index` is the position the download routes take)."""
    out: dict[int, list[dict[str, Any]]] = {}
    if message_ids:
        for a in session.execute(
            select(Attachment).where(Attachment.message_id.in_(message_ids)).order_by(Attachment.id)
        ).scalars():
            items = out.setdefault(int(a.message_id or 0), [])
            items.append(
                {"index": len(items), "filename": a.filename, "content_type": a.content_type, "size": a.size}
            )
    return out


def attachment_at(session: Session, account_id: int, message_id: int, index: int) -> Attachment:
    """The `index`-th file of a message of this account; NotFound for anything else."""
    atts = list(
        session.execute(
            select(Attachment)
            .where(Attachment.message_id == message_id, Attachment.account_id == account_id)
            .order_by(Attachment.id)
        ).scalars()
    )
    if not 0 <= index < len(atts):
        raise NotFound("file not found")
    return atts[index]


def link_token(secret: str, account_id: int, attachment_id: int) -> str:
    return Signer(secret, _LINK_SALT).dumps([account_id, attachment_id])


def attachment_for_link(session: Session, secret: str, token: str) -> Attachment:
    value = Signer(secret, _LINK_SALT).loads(token, max_age=LINK_MAX_AGE)
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise NotFound("file not found")
    a = session.get(Attachment, value[1])
    if a is None or a.account_id != value[0] or a.message_id is None:
        raise NotFound("file not found")
    return a
