"""Account, agents, teams, inboxes, API tokens, audit log, dead letters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts import actions as acc
from caredesk.accounts.models import Agent, ApiToken, Inbox, Team
from caredesk.conversations.delivery import retry_job as retry_dead_job
from caredesk.platform import jobs
from caredesk.platform.audit import AuditEntry
from caredesk.platform.errors import NotFound
from caredesk.web.api.schemas import (
    AccountPatch,
    AgentIn,
    AgentPatch,
    InboxIn,
    InboxPatch,
    TeamIn,
    TeamPatch,
    TokenIn,
)
from caredesk.web.deps import ActorDep, ServicesDep, forget_credentials

router = APIRouter(prefix="/api/v1", tags=["account"])


def _account_json(a: Any) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "slug": a.slug, "settings": a.settings}


@router.get("/me")
async def me(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def q(s: Session) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": actor.kind,
            "account": _account_json(acc.get_account(s, actor.account_id)),
        }
        if actor.kind == "agent" and actor.id is not None:
            out["agent"] = acc.agent_json(acc.get_agent(s, actor.account_id, actor.id))
        return out

    return await svc.db.read(q)


@router.get("/account")
async def get_account(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await svc.db.read(lambda s: _account_json(acc.get_account(s, actor.account_id)))


@router.patch("/account")
async def patch_account(body: AccountPatch, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await svc.db.write(lambda s: _account_json(acc.update_account(s, actor, body.name, body.settings)))


@router.get("/agents")
async def list_agents(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def q(s: Session) -> dict[str, Any]:
        rows = s.execute(
            select(Agent).where(Agent.account_id == actor.account_id).order_by(Agent.id)
        ).scalars()
        return {"items": [acc.agent_json(a) for a in rows]}

    return await svc.db.read(q)


@router.post("/agents", status_code=201)
async def create_agent(body: AgentIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await svc.db.write(lambda s: acc.agent_json(acc.create_agent(s, actor, **body.model_dump())))


@router.get("/agents/{agent_id}")
async def get_agent(agent_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await svc.db.read(lambda s: acc.agent_json(acc.get_agent(s, actor.account_id, agent_id)))


@router.patch("/agents/{agent_id}")
async def patch_agent(agent_id: int, body: AgentPatch, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    out = await svc.db.write(lambda s: acc.agent_json(acc.update_agent(s, actor, agent_id, changes)))
    if "active" in changes or "role" in changes:
        forget_credentials(svc)
    return out


@router.get("/teams")
async def list_teams(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def q(s: Session) -> dict[str, Any]:
        teams = list(
            s.execute(select(Team).where(Team.account_id == actor.account_id).order_by(Team.id)).scalars()
        )
        members = acc.team_member_ids(s, [t.id for t in teams])
        return {"items": [acc.team_json(t, members[t.id]) for t in teams]}

    return await svc.db.read(q)


@router.post("/teams", status_code=201)
async def create_team(body: TeamIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def w(s: Session) -> dict[str, Any]:
        team, members = acc.create_team(s, actor, body.name, body.description, body.skills, body.agent_ids)
        return acc.team_json(team, members)

    return await svc.db.write(w)


@router.get("/teams/{team_id}")
async def get_team(team_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def q(s: Session) -> dict[str, Any]:
        team = acc.get_team(s, actor.account_id, team_id)
        return acc.team_json(team, acc.team_member_ids(s, [team.id])[team.id])

    return await svc.db.read(q)


@router.patch("/teams/{team_id}")
async def patch_team(team_id: int, body: TeamPatch, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)

    def w(s: Session) -> dict[str, Any]:
        team, members = acc.update_team(s, actor, team_id, changes)
        return acc.team_json(team, members)

    return await svc.db.write(w)


@router.get("/inboxes")
async def list_inboxes(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def q(s: Session) -> dict[str, Any]:
        rows = s.execute(
            select(Inbox).where(Inbox.account_id == actor.account_id).order_by(Inbox.id)
        ).scalars()
        return {"items": [acc.inbox_json(i) for i in rows]}

    return await svc.db.read(q)


@router.post("/inboxes", status_code=201)
async def create_inbox(body: InboxIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await svc.db.write(
        lambda s: acc.inbox_json(acc.create_inbox(s, actor, **body.model_dump()), with_secrets=True)
    )


@router.get("/inboxes/{inbox_id}")
async def get_inbox(inbox_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    return await svc.db.read(lambda s: acc.inbox_json(acc.get_inbox(s, actor.account_id, inbox_id)))


@router.patch("/inboxes/{inbox_id}")
async def patch_inbox(inbox_id: int, body: InboxPatch, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    return await svc.db.write(lambda s: acc.inbox_json(acc.update_inbox(s, actor, inbox_id, changes)))


@router.get("/api-tokens")
async def list_tokens(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    actor.require("admin")

    def q(s: Session) -> dict[str, Any]:
        rows = s.execute(
            select(ApiToken).where(ApiToken.account_id == actor.account_id).order_by(ApiToken.id)
        ).scalars()
        return {
            "items": [
                {
                    "id": t.id,
                    "name": t.name,
                    "revoked": t.revoked,
                    "created_at": t.created_at.isoformat() + "Z",
                }
                for t in rows
            ]
        }

    return await svc.db.read(q)


@router.post("/api-tokens", status_code=201)
async def create_token(body: TokenIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def w(s: Session) -> dict[str, Any]:
        tok, raw = acc.create_api_token(s, actor, body.name)
        return {"id": tok.id, "name": tok.name, "token": raw}

    return await svc.db.write(w)


@router.delete("/api-tokens/{token_id}", status_code=204)
async def revoke_token(token_id: int, actor: ActorDep, svc: ServicesDep) -> Response:
    await svc.db.write(acc.revoke_api_token, actor, token_id)
    forget_credentials(svc)
    return Response(status_code=204)


@router.get("/audit")
async def audit_log(
    actor: ActorDep,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1)] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    actor.require("supervisor")

    def q(s: Session) -> dict[str, Any]:
        stmt = select(AuditEntry).where(AuditEntry.account_id == actor.account_id)
        if before:
            stmt = stmt.where(AuditEntry.id < before)
        if target_type:
            stmt = stmt.where(AuditEntry.target_type == target_type)
        if target_id:
            stmt = stmt.where(AuditEntry.target_id == target_id)
        rows = list(s.execute(stmt.order_by(AuditEntry.id.desc()).limit(limit)).scalars())
        return {
            "items": [
                {
                    "id": e.id,
                    "actor_type": e.actor_type,
                    "actor_id": e.actor_id,
                    "action": e.action,
                    "target_type": e.target_type,
                    "target_id": e.target_id,
                    "data": e.data,
                    "created_at": e.created_at.isoformat() + "Z",
                }
                for e in rows
            ],
            "next": rows[-1].id if len(rows) == limit else None,
        }

    return await svc.db.read(q)


@router.get("/jobs/dead")
async def dead_jobs(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def q(s: Session) -> dict[str, Any]:
        return {
            "items": [
                {
                    "id": j.id,
                    "kind": j.kind,
                    "payload": j.payload,
                    "attempts": j.attempts,
                    "last_error": j.last_error,
                    "finished_at": j.finished_at.isoformat() + "Z" if j.finished_at else None,
                }
                for j in jobs.dead_letters(s, actor.account_id)
            ]
        }

    return await svc.db.read(q)


@router.post("/jobs/{job_id}/retry")
async def retry_job(job_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    def w(s: Session) -> dict[str, Any]:
        if not retry_dead_job(s, actor.account_id, job_id):
            raise NotFound("no dead job with this id")
        return {"id": job_id, "status": "queued"}

    return await svc.db.write(w)
