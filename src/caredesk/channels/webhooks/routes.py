"""`/api/v1/webhooks`: an account's outbound webhook endpoints (admins only; another account's id is 404)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import Field, StringConstraints
from sqlalchemy.orm import Session

from caredesk.channels import webhooks as wh
from caredesk.services import Services
from caredesk.web.api.schemas import Strict
from caredesk.web.deps import ActorDep, ServicesDep

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

Url = Annotated[str, StringConstraints(min_length=8, max_length=2000, strip_whitespace=True)]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(max_length=200)]


class WebhookIn(Strict):
    url: Url
    event_types: list[EventType] = Field(min_length=1, max_length=len(wh.EVENT_TYPES))
    description: Description = ""
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] | None = None
    active: bool = True


class WebhookPatch(Strict):
    url: Url | None = None
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=len(wh.EVENT_TYPES))
    description: Description | None = None
    active: bool | None = None
    rotate_secret: bool = False


def _changed(svc: Services) -> None:
    dispatcher = svc.extras.get("webhooks.dispatcher")
    if dispatcher is not None:
        dispatcher.forget()


@router.get("")
async def list_webhooks(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    actor.require("admin")
    return await svc.db.read(
        lambda s: {"items": [wh.endpoint_json(e) for e in wh.list_endpoints(s, actor.account_id)]}
    )


@router.post("", status_code=201)
async def create_webhook(body: WebhookIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Creates an endpoint; the answer carries its signing `secret` (whsec_...), also on rotation."""

    def w(s: Session) -> dict[str, Any]:
        ep = wh.do_create_endpoint(s, actor, **body.model_dump())
        return wh.endpoint_json(ep, with_secret=True)

    out = await svc.db.write(w)
    _changed(svc)
    return out


@router.get("/{webhook_id}")
async def get_webhook(webhook_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    actor.require("admin")
    return await svc.db.read(lambda s: wh.endpoint_json(wh.get_endpoint(s, actor.account_id, webhook_id)))


@router.patch("/{webhook_id}")
async def patch_webhook(
    webhook_id: int, body: WebhookPatch, actor: ActorDep, svc: ServicesDep
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)

    def w(s: Session) -> dict[str, Any]:
        ep = wh.do_update_endpoint(s, actor, webhook_id, changes)
        return wh.endpoint_json(ep, with_secret=bool(changes.get("rotate_secret")))

    out = await svc.db.write(w)
    _changed(svc)
    return out


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: int, actor: ActorDep, svc: ServicesDep) -> Response:
    await svc.db.write(wh.do_delete_endpoint, actor, webhook_id)
    _changed(svc)
    return Response(status_code=204)
