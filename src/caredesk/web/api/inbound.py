"""The generic inbound endpoint: an integration posts a customer's message into one of its inboxes.

Answers 200 (duplicate) or 201 (new) only after the message is committed.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from caredesk.accounts.actions import inbox_exists
from caredesk.contacts.identities import normalize_identity
from caredesk.conversations.inbound import Inbound, receive_inbound
from caredesk.platform.errors import NotFound
from caredesk.web.api.schemas import InboundIn
from caredesk.web.deps import ActorDep, ServicesDep

router = APIRouter(prefix="/api/v1/inboxes", tags=["inbound"])


class InboundOut(BaseModel):
    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool


@router.post(
    "/{inbox_id}/inbound",
    status_code=201,
    response_model=InboundOut,
    responses={200: {"model": InboundOut, "description": "already received (same id): stored once"}},
)
async def inbound(inbox_id: int, body: InboundIn, actor: ActorDep, svc: ServicesDep) -> Response:
    value = normalize_identity(body.sender.kind, body.sender.value)

    def w(s: Session) -> dict[str, Any]:
        if not inbox_exists(s, actor.account_id, inbox_id):
            raise NotFound("inbox not found")
        r = receive_inbound(
            s,
            Inbound(
                account_id=actor.account_id,
                inbox_id=inbox_id,
                identity_kind=body.sender.kind,
                identity_value=value,
                text=body.text,
                channel_message_id=body.id,
                contact_name=body.sender.name,
                subject=body.subject,
                meta=body.metadata,
            ),
        )
        return {
            "message_id": r.message_id,
            "conversation_id": r.conversation_id,
            "contact_id": r.contact_id,
            "duplicate": r.duplicate,
        }

    result = await svc.db.write(w)
    return Response(
        orjson.dumps(result), status_code=200 if result["duplicate"] else 201, media_type="application/json"
    )
