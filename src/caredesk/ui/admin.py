"""Admin pages: agents (invite, role, skills, capacity), teams, inboxes (web chat + embed snippet), account.

Plain HTML forms (POST, then redirect back); errors re-render the page with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from caredesk.accounts import actions as acc
from caredesk.accounts.actors import Actor
from caredesk.conversations.delivery import retry_job
from caredesk.platform.errors import CaredeskError, Forbidden, Invalid, NotFound
from caredesk.platform.security import new_token
from caredesk.ui import views
from caredesk.ui.render import page
from caredesk.ui.session import services, viewer
from caredesk.web.deps import ActorDep, ServicesDep

router = APIRouter(prefix="/admin", include_in_schema=False)
SECTIONS = ("agents", "teams", "inboxes", "account", "dead-letters")


def _words(value: str) -> list[str]:
    return sorted({w.strip() for w in value.replace("\n", ",").split(",") if w.strip()})[:100]


def _ids(values: list[str]) -> list[int]:
    return [int(x) for x in values if x.isdigit() and len(x) < 18]


@router.get("")
async def admin_home() -> Response:
    return RedirectResponse("/admin/agents", status_code=303)


@router.get("/{section}")
async def admin_page(request: Request, section: str, error: str = "", status_code: int = 200) -> HTMLResponse:
    if section not in SECTIONS:
        raise NotFound("no such admin page")
    v = await viewer(request)
    if not v.is_admin:
        raise Forbidden("admin pages need the admin role")
    data = await services(request).db.read(views.admin_data, v.actor.account_id)
    if section == "dead-letters":
        data["dead"] = await services(request).db.read(views.dead_letters, v.actor.account_id)
    public_url = services(request).settings.public_url.rstrip("/")
    return page(
        f"admin/{section}.html",
        status_code=status_code,
        v=v,
        section=section,
        error=error,
        d=data,
        public_url=public_url,
    )


async def _apply(request: Request, section: str, svc: Any, fn: Callable[[Session], Any]) -> Response:
    try:
        await svc.db.write(fn)
    except CaredeskError as exc:
        return await admin_page(request, section, error=exc.detail, status_code=exc.status)
    return RedirectResponse(f"/admin/{section}", status_code=303)


@router.post("/agents")
async def invite_agent(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    form = await request.form()
    f = {k: str(v) for k, v in form.items()}
    capacity = f.get("capacity", "5")

    def w(s: Session) -> None:
        if not capacity.isdigit():
            raise Invalid("capacity must be a number")
        acc.create_agent(
            s,
            actor,
            email=f.get("email", ""),
            name=f.get("name", ""),
            role=f.get("role", "agent"),
            password=f.get("password") or None,
            skills=_words(f.get("skills", "")),
            capacity=int(capacity),
        )

    return await _apply(request, "agents", svc, w)


@router.post("/agents/{agent_id}")
async def update_agent(request: Request, agent_id: int, actor: ActorDep, svc: ServicesDep) -> Response:
    form = await request.form()
    f = {k: str(v) for k, v in form.items()}
    changes: dict[str, Any] = {}
    if "role" in f:
        changes["role"] = f["role"]
    if "skills" in f:
        changes["skills"] = _words(f["skills"])
    if "capacity" in f:
        if not f["capacity"].isdigit():
            return await admin_page(request, "agents", error="capacity must be a number", status_code=422)
        changes["capacity"] = int(f["capacity"])
    if "availability" in f:
        changes["availability"] = f["availability"]
    changes["active"] = f.get("active") == "on"
    return await _apply(request, "agents", svc, lambda s: acc.update_agent(s, actor, agent_id, changes))


@router.post("/teams")
async def create_team(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    form = await request.form()
    members = _ids([str(x) for x in form.getlist("agent_ids")])
    name, desc, skills = (
        str(form.get("name") or ""),
        str(form.get("description") or "")[:1000],
        _words(str(form.get("skills") or "")),
    )
    return await _apply(
        request, "teams", svc, lambda s: acc.create_team(s, actor, name, desc, skills, members)
    )


@router.post("/teams/{team_id}")
async def update_team(request: Request, team_id: int, actor: ActorDep, svc: ServicesDep) -> Response:
    form = await request.form()
    changes = {
        "agent_ids": _ids([str(x) for x in form.getlist("agent_ids")]),
        "skills": _words(str(form.get("skills") or "")),
    }
    return await _apply(request, "teams", svc, lambda s: acc.update_team(s, actor, team_id, changes))


@router.post("/inboxes")
async def create_inbox(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    form = await request.form()
    name, greeting = str(form.get("name") or ""), str(form.get("greeting") or "")[:1000]
    config = {
        "identity_secret": new_token(nbytes=24),
        "prechat": {"enabled": False, "fields": ["name", "email"]},
    }
    return await _apply(
        request,
        "inboxes",
        svc,
        lambda s: acc.create_inbox(s, actor, name=name, channel="webchat", greeting=greeting, config=config),
    )


@router.post("/inboxes/{inbox_id}")
async def update_inbox(request: Request, inbox_id: int, actor: ActorDep, svc: ServicesDep) -> Response:
    form = await request.form()
    fields = [x for x in ("name", "email") if form.get(f"prechat_{x}") == "on"]
    config: dict[str, Any] = {
        "prechat": {"enabled": bool(fields), "fields": fields},
        "locale": str(form.get("locale") or "")[:16],
    }
    if form.get("rotate_secret") == "on":
        config["identity_secret"] = new_token(nbytes=24)
    changes = {"greeting": str(form.get("greeting") or "")[:1000], "config": config}
    return await _apply(request, "inboxes", svc, lambda s: acc.update_inbox(s, actor, inbox_id, changes))


@router.post("/jobs/{job_id}/retry")
async def retry_dead_letter(request: Request, job_id: int, actor: ActorDep, svc: ServicesDep) -> Response:
    """Run a dead letter again (a failed reply goes back to queued and is sent again)."""

    def w(s: Session) -> None:
        actor.require("admin")
        if not retry_job(s, actor.account_id, job_id):
            raise NotFound("no dead job with this id")

    return await _apply(request, "dead-letters", svc, w)


def _parse_snippets(text: str) -> list[dict[str, str]]:
    """One snippet per line: `Name: text with {first_name}`."""
    out = []
    for line in text.splitlines():
        name, sep, body = line.partition(":")
        if sep and name.strip() and body.strip():
            out.append({"name": name.strip()[:80], "body": body.strip()[:2000]})
    return out[:100]


@router.post("/account")
async def update_account(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    form = await request.form()
    name = str(form.get("name") or "")
    settings = {"snippets": _parse_snippets(str(form.get("snippets") or ""))}
    return await _apply(request, "account", svc, lambda s: acc.update_account(s, actor, name, settings))


def _require_admin(actor: Actor) -> None:
    actor.require("admin")
