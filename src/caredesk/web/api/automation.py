"""Automation and routing over HTTP: configuration, secrets, actions for a conversation (the agent's
buttons), action runs (audit), the queue with honest waits, SLA clocks, the re-ask check.

`setup` also mounts the demo shop API under /demo-shop/api and registers the routing sweep job.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.automation import config as cfg
from caredesk.automation.actions import actions_json, run_action
from caredesk.automation.brief import update_brief
from caredesk.automation.facts import known_facts, reasks, remember
from caredesk.automation.models import ActionRun
from caredesk.automation.secrets import secret_names, set_secret
from caredesk.contacts.models import Contact
from caredesk.conversations.actions import add_activity, get_conversation
from caredesk.platform.errors import Invalid
from caredesk.platform.models import utcnow
from caredesk.routing import jobs as routing_jobs
from caredesk.routing.hours import parse_hours
from caredesk.routing.models import QueueEntry
from caredesk.routing.queue import queue_status
from caredesk.routing.router import account_settings
from caredesk.routing.sla import clocks, worst
from caredesk.web.deps import ActorDep, ServicesDep

router = APIRouter(tags=["automation"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ConfigIn(Strict):
    source: str = Field(min_length=1, max_length=cfg.MAX_SOURCE)


class SecretIn(Strict):
    value: str = Field(min_length=1, max_length=10_000)


class RunIn(Strict):
    slots: dict[str, str | int | float] = Field(default_factory=dict, max_length=50)
    confirmed: bool = False


class TextIn(Strict):
    content: str = Field(max_length=65_536)


@router.get("/api/v1/automation/config")
async def get_config(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    found = await svc.db.read(cfg.active_source, actor.account_id)
    return {"version": found[0], "source": found[1]} if found else {"version": 0, "source": ""}


@router.put("/api/v1/automation/config")
async def put_config(body: ConfigIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    actor.require("admin")

    def w(s: Session) -> int:
        return cfg.save_config(s, actor.account_id, body.source, f"{actor.kind}:{actor.id}")

    return {"version": await svc.db.write(w)}


@router.get("/api/v1/automation/secrets")
async def list_secrets(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    actor.require("admin")
    return {"names": await svc.db.read(secret_names, actor.account_id)}  # values never leave the server


@router.put("/api/v1/automation/secrets/{name}", status_code=204)
async def put_secret(
    name: Annotated[str, Field(max_length=100)], body: SecretIn, actor: ActorDep, svc: ServicesDep
) -> Response:
    actor.require("admin")
    await svc.db.write(set_secret, actor.account_id, svc.settings.secret_key, name, body.value)
    return Response(status_code=204)


@router.get("/api/v1/automation/actions")
async def list_actions(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    spec = await svc.db.read(cfg.active_config, actor.account_id)
    return {"items": actions_json(spec)}


def _known(s: Session, account_id: int, conversation_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    conv = get_conversation(s, account_id, conversation_id)
    contact = s.get(Contact, conv.contact_id)
    info = {"name": contact.name if contact else "", "email": contact.email if contact else None}
    return known_facts(conv, contact), info


@router.get("/api/v1/conversations/{conversation_id}/actions")
async def conversation_actions(conversation_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def r(s: Session) -> dict[str, Any]:
        known, _ = _known(s, actor.account_id, conversation_id)
        runs = s.execute(
            select(ActionRun)
            .where(ActionRun.account_id == actor.account_id, ActionRun.conversation_id == conversation_id)
            .order_by(ActionRun.id)
        ).scalars()
        return {
            "items": actions_json(cfg.active_config(s, actor.account_id), known),
            "facts": known,
            "runs": [_run_json(x) for x in runs],
        }

    return await svc.db.read(r)


def _run_json(r: ActionRun) -> dict[str, Any]:
    return {
        "id": r.id,
        "action": r.action,
        "actor_type": r.actor_type,
        "actor_id": r.actor_id,
        "slots": r.slots,
        "status": r.status,
        "result": r.result,
        "error": r.error,
        "created_at": r.created_at.isoformat() + "Z",
    }


@router.post("/api/v1/conversations/{conversation_id}/actions/{name}")
async def run_conversation_action(
    conversation_id: int, name: str, body: RunIn, actor: ActorDep, svc: ServicesDep
) -> dict[str, Any]:
    known, contact = await svc.db.read(_known, actor.account_id, conversation_id)
    spec = await svc.db.read(cfg.active_config, actor.account_id)
    action = spec.action(name) if spec else None
    if action is not None and action.changes_data and not body.confirmed:
        raise Invalid(
            "this action changes data: send confirmed=true after checking with the customer",
            confirm=action.confirm,
        )
    out = await run_action(
        svc, actor, name, {**known, **body.slots}, conversation_id=conversation_id, contact=contact
    )

    def w(s: Session) -> None:
        conv = get_conversation(s, actor.account_id, conversation_id)
        who = actor.name or actor.kind
        title = action.title if action else name
        add_activity(
            s,
            conv,
            f"{who} ran {title}: {out.status}" + (f" ({out.reason})" if out.reason else ""),
            {"action": "action_run", "run_id": out.run_id, "status": out.status},
        )
        step = f"{title} by {who}: {out.status}" + (f" ({out.reason})" if out.reason else "")
        update_brief(
            conv,
            step=(who, step),
            promise=(who, out.promise) if out.promise else None,
            verified={k: v for k, v in out.slots.items() if action and k in action.slots}
            if out.status == "ok"
            else None,
        )
        if out.status == "ok":
            remember(
                s,
                conv,
                {k: v for k, v in out.slots.items() if action and k in action.slots and action.slots[k].fact},
            )
        conv.updated_at = utcnow()

    await svc.db.write(w)
    return out.as_json()


@router.get("/api/v1/conversations/{conversation_id}/queue")
async def conversation_queue(conversation_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def r(s: Session) -> dict[str, Any]:
        get_conversation(s, actor.account_id, conversation_id)
        return queue_status(s, actor.account_id, conversation_id)

    return await svc.db.read(r)


@router.get("/api/v1/conversations/{conversation_id}/sla")
async def conversation_sla(conversation_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def r(s: Session) -> dict[str, Any]:
        conv = get_conversation(s, actor.account_id, conversation_id)
        settings = account_settings(s, actor.account_id)
        cs = clocks(conv, dict(settings.get("sla") or {}), parse_hours(settings), utcnow())
        return {"state": worst(cs), "clocks": [c.as_json() for c in cs]}

    return await svc.db.read(r)


@router.post("/api/v1/conversations/{conversation_id}/reask-check")
async def reask_check(
    conversation_id: int, body: TextIn, actor: ActorDep, svc: ServicesDep
) -> dict[str, Any]:
    """For the composer: does this draft ask the customer for something we already know?"""
    known, _ = await svc.db.read(_known, actor.account_id, conversation_id)
    asked = reasks(body.content, known)
    return {"asks_again": asked, "known": {k: known[k] for k in asked}}


@router.get("/api/v1/routing/queue")
async def routing_queue(
    actor: ActorDep, svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, Any]:
    def r(s: Session) -> dict[str, Any]:
        ids = list(
            s.execute(
                select(QueueEntry.conversation_id)
                .where(QueueEntry.account_id == actor.account_id)
                .order_by(QueueEntry.rank.desc(), QueueEntry.queued_at)
                .limit(limit)
            ).scalars()
        )
        return {"items": [{"conversation_id": cid, **queue_status(s, actor.account_id, cid)} for cid in ids]}

    return await svc.db.read(r)


@router.post("/api/v1/routing/sweep")
async def routing_sweep(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Re-route conversations of offline agents, serve the queue, warn before SLA breaches (also runs
    every 15 s)."""
    actor.require("supervisor")
    return await svc.db.write(routing_jobs.sweep_account, actor.account_id)


def setup(app: FastAPI, services: Any) -> None:
    from caredesk.demo.shop_api import create_shop_app, shared_shop

    app.include_router(router)
    app.mount("/demo-shop/api", create_shop_app(shared_shop()))
    routing_jobs.register(services)
