"""The customer panel's actions: the account's actions with known slot values prefilled, a confirm
step for actions that change data, run, result, audit (htmx partials; every value escaped by Jinja)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from caredesk.automation import config as cfg
from caredesk.automation.actions import confirm_text
from caredesk.automation.agent import panel, run_for_agent
from caredesk.platform.errors import NotFound
from caredesk.ui.render import fragment
from caredesk.web.deps import ActorDep, ServicesDep

router = APIRouter(include_in_schema=False)
MAX_VALUE = 2000


@router.get("/ui/c/{conversation_id}/actions")
async def actions_panel(conversation_id: int, actor: ActorDep, svc: ServicesDep) -> HTMLResponse:
    data = await svc.db.read(panel, actor.account_id, conversation_id)
    return HTMLResponse(fragment("_actions.html", p=data, review=None, result=None))


@router.post("/ui/c/{conversation_id}/actions/{name}")
async def run_panel_action(
    request: Request, conversation_id: int, name: str, actor: ActorDep, svc: ServicesDep
) -> HTMLResponse:
    form = await request.form()
    spec = await svc.db.read(cfg.active_config, actor.account_id)
    action = spec.action(name) if spec else None
    if action is None:
        raise NotFound("no such action")
    slots: dict[str, Any] = {}
    for key in action.slots:
        value = form.get(f"slot.{key}")
        if isinstance(value, str) and value.strip():
            slots[key] = value.strip()[:MAX_VALUE]
    data = await svc.db.read(panel, actor.account_id, conversation_id)
    if action.changes_data and form.get("step") != "run":
        review = {
            "name": action.name,
            "title": action.title,
            "slots": slots,
            "text": confirm_text(action, {**data["facts"], **slots}, data["contact"]),
        }
        return HTMLResponse(fragment("_actions.html", p=data, review=review, result=None))
    out = await run_for_agent(svc, actor, conversation_id, name, slots)
    data = await svc.db.read(panel, actor.account_id, conversation_id)
    result = {"title": action.title, **out.as_json()}
    return HTMLResponse(
        fragment("_actions.html", p=data, review=None, result=result),
        headers={"HX-Trigger": "timeline-changed"},
    )
