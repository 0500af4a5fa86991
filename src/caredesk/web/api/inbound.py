"""The generic inbound endpoint: an integration posts a customer's message into one of its inboxes.

Answers 200 (duplicate) or 201 (new) only after the message is committed.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import APIRouter, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from caredesk.accounts.actions import inbox_exists
from caredesk.contacts.identities import normalize_identity
from caredesk.conversations.inbound import Inbound, receive_inbound
from caredesk.platform.errors import CaredeskError, NotFound
from caredesk.services import Services
from caredesk.web.api.schemas import InboundIn
from caredesk.web.deps import ActorDep, ServicesDep, token_actor
from caredesk.web.hotpath import HotRequest, HotResponse, HotRoute
from caredesk.web.limits import json_depth

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

    result = await svc.db.write(_store, _inbound(actor.account_id, inbox_id, body, value))
    return Response(
        orjson.dumps(result), status_code=200 if result["duplicate"] else 201, media_type="application/json"
    )


def _inbound(account_id: int, inbox_id: int, body: InboundIn, value: str) -> Inbound:
    return Inbound(
        account_id=account_id,
        inbox_id=inbox_id,
        identity_kind=body.sender.kind,
        identity_value=value,
        text=body.text,
        channel_message_id=body.id,
        contact_name=body.sender.name,
        subject=body.subject,
        meta=body.metadata,
    )


def _store(s: Session, msg: Inbound) -> dict[str, Any]:
    if not inbox_exists(s, msg.account_id, msg.inbox_id):
        raise NotFound("inbox not found")
    r = receive_inbound(s, msg)
    return {
        "message_id": r.message_id,
        "conversation_id": r.conversation_id,
        "contact_id": r.contact_id,
        "duplicate": r.duplicate,
    }


async def inbound_hot(svc: Services, req: HotRequest) -> HotResponse | None:
    """The same endpoint without FastAPI in front, for the valid case; None hands the request to the route
    above (bad token, invalid body, unknown inbox...), which answers it exactly as it always does."""
    token = req.bearer()
    ctype = req.header(b"content-type") or ""
    if token is None or not ctype.startswith("application/json"):
        return None
    inbox_id = int(req.params[0])
    actor = await token_actor(svc, token)
    if actor is None:
        return None
    try:
        body = InboundIn.model_validate_json(req.body)
        value = normalize_identity(body.sender.kind, body.sender.value)
    except (ValidationError, ValueError, CaredeskError):
        return None
    if (
        body.metadata
        and json_depth(body.metadata, svc.settings.max_json_depth) >= svc.settings.max_json_depth
    ):
        return None
    try:
        result = await svc.db.write(_store, _inbound(actor.account_id, inbox_id, body, value))
    except CaredeskError:
        return None  # nothing was stored (the write rolled back): the full stack answers the error
    return HotResponse(200 if result["duplicate"] else 201, orjson.dumps(result))


HOT_ROUTES = [HotRoute("POST", re.compile(r"/api/v1/inboxes/(\d{1,18})/inbound"), inbound_hot)]
