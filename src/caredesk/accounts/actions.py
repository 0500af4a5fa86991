"""Validate-and-write actions for accounts, agents, teams, inboxes and tokens."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.accounts.models import (
    AVAILABILITY,
    CHANNELS,
    ROLES,
    Account,
    Agent,
    AgentSession,
    ApiToken,
    Inbox,
    Team,
    TeamMember,
)
from caredesk.platform.audit import audit
from caredesk.platform.db import SQL, raw
from caredesk.platform.errors import Conflict, Invalid, NotFound, Unauthorized
from caredesk.platform.events import open_stream, record_event
from caredesk.platform.models import utcnow
from caredesk.platform.security import hash_password, new_token, token_digest, verify_password

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SESSION_DAYS = 14


def agent_json(a: Agent) -> dict[str, Any]:
    return {
        "id": a.id,
        "email": a.email,
        "name": a.name,
        "role": a.role,
        "skills": a.skills,
        "languages": a.languages,
        "capacity": a.capacity,
        "availability": a.availability,
        "active": a.active,
    }


def inbox_json(i: Inbox, *, with_secrets: bool = False) -> dict[str, Any]:
    config = (
        i.config
        if with_secrets
        else {k: v for k, v in i.config.items() if "secret" not in k and "token" not in k}
    )
    return {
        "id": i.id,
        "name": i.name,
        "channel": i.channel,
        "public_token": i.public_token,
        "automation": i.automation,
        "greeting": i.greeting,
        "config": config,
    }


def team_json(t: Team, member_ids: list[int]) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "skills": t.skills,
        "agent_ids": member_ids,
    }


def create_account(session: Session, name: str, slug: str, settings: dict[str, Any] | None = None) -> Account:
    if not name.strip():
        raise Invalid("account name is required")
    if not SLUG.match(slug):
        raise Invalid("slug must be 2-63 lowercase letters, digits or dashes")
    if session.execute(select(Account.id).where(Account.slug == slug)).first():
        raise Conflict(f"an account with slug {slug!r} exists")
    acc = Account(name=name.strip(), slug=slug, settings=settings or {})
    session.add(acc)
    session.flush()
    open_stream(session, acc.id)
    return acc


def get_account(session: Session, account_id: int) -> Account:
    acc = session.get(Account, account_id)
    if acc is None:
        raise NotFound("account not found")
    return acc


def update_account(
    session: Session, actor: Actor, name: str | None, settings: dict[str, Any] | None
) -> Account:
    actor.require("admin")
    acc = get_account(session, actor.account_id)
    if name is not None:
        if not name.strip():
            raise Invalid("account name is required")
        acc.name = name.strip()
    if settings is not None:
        acc.settings = {**acc.settings, **settings}
    audit(
        session,
        acc.id,
        actor.audit_ref,
        "account.updated",
        "account",
        acc.id,
        {"name": name, "settings": settings},
    )
    return acc


def create_agent(
    session: Session,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: str = "agent",
    password: str | None = None,
    skills: list[str] | None = None,
    languages: list[str] | None = None,
    capacity: int = 5,
) -> Agent:
    actor.require("admin")
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise Invalid("a valid email address is required")
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    if not 0 <= capacity <= 1000:
        raise Invalid("capacity must be between 0 and 1000")
    if password is not None and len(password) < 8:
        raise Invalid("password must have at least 8 characters")
    if session.execute(select(Agent.id).where(Agent.email == email)).first():
        raise Conflict("an agent with this email exists")
    agent = Agent(
        account_id=actor.account_id,
        email=email,
        name=name.strip() or email,
        role=role,
        password_hash=hash_password(password) if password else None,
        skills=sorted(set(skills or [])),
        languages=sorted(set(languages or [])),
        capacity=capacity,
        availability="offline",
    )
    session.add(agent)
    session.flush()
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "agent.created",
        "agent",
        agent.id,
        {"email": email, "role": role},
    )
    record_event(session, actor.account_id, "agent.updated", agent_json(agent))
    return agent


def get_agent(session: Session, account_id: int, agent_id: int) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None or agent.account_id != account_id:
        raise NotFound("agent not found")
    return agent


def update_agent(session: Session, actor: Actor, agent_id: int, changes: dict[str, Any]) -> Agent:
    agent = get_agent(session, actor.account_id, agent_id)
    self_edit = actor.kind == "agent" and actor.id == agent_id
    allowed_self = {"name", "availability", "password"}
    if not (self_edit and set(changes) <= allowed_self):
        actor.require("admin")
    if "role" in changes and changes["role"] not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    if "availability" in changes and changes["availability"] not in AVAILABILITY:
        raise Invalid(f"availability must be one of {', '.join(AVAILABILITY)}")
    if "capacity" in changes and not 0 <= int(changes["capacity"]) <= 1000:
        raise Invalid("capacity must be between 0 and 1000")
    for key in ("name", "role", "capacity", "availability", "active"):
        if key in changes:
            setattr(agent, key, changes[key])
    for key in ("skills", "languages"):
        if key in changes:
            setattr(agent, key, sorted(set(changes[key])))
    if "password" in changes:
        if len(changes["password"]) < 8:
            raise Invalid("password must have at least 8 characters")
        agent.password_hash = hash_password(changes["password"])
    safe = {k: v for k, v in changes.items() if k != "password"}
    audit(session, actor.account_id, actor.audit_ref, "agent.updated", "agent", agent.id, safe)
    record_event(session, actor.account_id, "agent.updated", agent_json(agent))
    return agent


def create_team(
    session: Session,
    actor: Actor,
    name: str,
    description: str = "",
    skills: list[str] | None = None,
    agent_ids: list[int] | None = None,
) -> tuple[Team, list[int]]:
    actor.require("admin")
    if not name.strip():
        raise Invalid("team name is required")
    if session.execute(
        select(Team.id).where(Team.account_id == actor.account_id, Team.name == name.strip())
    ).first():
        raise Conflict("a team with this name exists")
    team = Team(
        account_id=actor.account_id,
        name=name.strip(),
        description=description,
        skills=sorted(set(skills or [])),
    )
    session.add(team)
    session.flush()
    members = set_team_members(session, actor, team, agent_ids or [])
    audit(session, actor.account_id, actor.audit_ref, "team.created", "team", team.id, {"name": team.name})
    return team, members


def set_team_members(session: Session, actor: Actor, team: Team, agent_ids: list[int]) -> list[int]:
    ids = sorted(set(agent_ids))
    if ids:
        found = set(
            session.execute(
                select(Agent.id).where(Agent.account_id == actor.account_id, Agent.id.in_(ids))
            ).scalars()
        )
        if found != set(ids):
            raise NotFound(f"agent not found: {sorted(set(ids) - found)}")
    session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    for agent_id in ids:
        session.add(TeamMember(team_id=team.id, agent_id=agent_id))
    return ids


def get_team(session: Session, account_id: int, team_id: int) -> Team:
    team = session.get(Team, team_id)
    if team is None or team.account_id != account_id:
        raise NotFound("team not found")
    return team


def team_member_ids(session: Session, team_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {t: [] for t in team_ids}
    if team_ids:
        for team_id, agent_id in session.execute(
            select(TeamMember.team_id, TeamMember.agent_id)
            .where(TeamMember.team_id.in_(team_ids))
            .order_by(TeamMember.agent_id)
        ):
            out[team_id].append(agent_id)
    return out


def update_team(
    session: Session, actor: Actor, team_id: int, changes: dict[str, Any]
) -> tuple[Team, list[int]]:
    actor.require("admin")
    team = get_team(session, actor.account_id, team_id)
    for key in ("name", "description"):
        if key in changes:
            setattr(team, key, changes[key])
    if "skills" in changes:
        team.skills = sorted(set(changes["skills"]))
    members = (
        set_team_members(session, actor, team, changes["agent_ids"])
        if "agent_ids" in changes
        else team_member_ids(session, [team.id])[team.id]
    )
    audit(session, actor.account_id, actor.audit_ref, "team.updated", "team", team.id, changes)
    return team, members


def create_inbox(
    session: Session,
    actor: Actor,
    *,
    name: str,
    channel: str,
    config: dict[str, Any] | None = None,
    automation: bool = False,
    greeting: str = "",
) -> Inbox:
    actor.require("admin")
    if channel not in CHANNELS:
        raise Invalid(f"channel must be one of {', '.join(CHANNELS)}")
    if not name.strip():
        raise Invalid("inbox name is required")
    inbox = Inbox(
        account_id=actor.account_id,
        name=name.strip(),
        channel=channel,
        public_token=new_token(nbytes=18),
        config=config or {},
        automation=automation,
        greeting=greeting,
    )
    session.add(inbox)
    session.flush()
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "inbox.created",
        "inbox",
        inbox.id,
        {"channel": channel, "name": inbox.name},
    )
    return inbox


def get_inbox(session: Session, account_id: int, inbox_id: int) -> Inbox:
    inbox = session.get(Inbox, inbox_id)
    if inbox is None or inbox.account_id != account_id:
        raise NotFound("inbox not found")
    return inbox


_INBOX_EXISTS = SQL("SELECT 1 FROM inboxes WHERE id = :id AND account_id = :a")


def inbox_exists(session: Session, account_id: int, inbox_id: int) -> bool:
    return raw(session).one(_INBOX_EXISTS, {"id": inbox_id, "a": account_id}) is not None


def inbox_by_public_token(session: Session, token: str) -> Inbox | None:
    return session.execute(select(Inbox).where(Inbox.public_token == token)).scalar_one_or_none()


def update_inbox(session: Session, actor: Actor, inbox_id: int, changes: dict[str, Any]) -> Inbox:
    actor.require("admin")
    inbox = get_inbox(session, actor.account_id, inbox_id)
    for key in ("name", "automation", "greeting"):
        if key in changes:
            setattr(inbox, key, changes[key])
    if "config" in changes:
        inbox.config = {**inbox.config, **changes["config"]}
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "inbox.updated",
        "inbox",
        inbox.id,
        {k: v for k, v in changes.items() if k != "config"},
    )
    return inbox


def create_api_token(session: Session, actor: Actor, name: str) -> tuple[ApiToken, str]:
    """Returns the token record and the token itself, shown once."""
    actor.require("admin")
    raw = new_token("cd_", 32)
    tok = ApiToken(
        account_id=actor.account_id, name=name or "token", token_digest=token_digest(raw), created_by=actor.id
    )
    session.add(tok)
    session.flush()
    audit(
        session, actor.account_id, actor.audit_ref, "token.created", "api_token", tok.id, {"name": tok.name}
    )
    return tok, raw


def revoke_api_token(session: Session, actor: Actor, token_id: int) -> None:
    actor.require("admin")
    tok = session.get(ApiToken, token_id)
    if tok is None or tok.account_id != actor.account_id:
        raise NotFound("token not found")
    tok.revoked = True
    audit(session, actor.account_id, actor.audit_ref, "token.revoked", "api_token", tok.id)


def actor_for_token(session: Session, raw: str) -> Actor | None:
    tok = session.execute(
        select(ApiToken).where(ApiToken.token_digest == token_digest(raw))
    ).scalar_one_or_none()
    if tok is None or tok.revoked:
        return None
    return Actor(account_id=tok.account_id, kind="token", id=tok.id, role="admin", name=tok.name)


def login(session: Session, email: str, password: str) -> tuple[str, str, Agent]:
    """Check a password; on success open a session. Returns (cookie token, csrf token, agent)."""
    agent = session.execute(select(Agent).where(Agent.email == email.strip().lower())).scalar_one_or_none()
    if (
        agent is None
        or not agent.active
        or not agent.password_hash
        or not verify_password(agent.password_hash, password)
    ):
        raise Unauthorized("wrong email or password")
    raw = new_token(nbytes=32)
    csrf = new_token(nbytes=24)
    session.add(
        AgentSession(
            id=token_digest(raw),
            agent_id=agent.id,
            account_id=agent.account_id,
            csrf_token=csrf,
            expires_at=utcnow() + dt.timedelta(days=SESSION_DAYS),
        )
    )
    if agent.availability == "offline":
        agent.availability = "online"
    audit(session, agent.account_id, ("agent", agent.id), "agent.login", "agent", agent.id)
    return raw, csrf, agent


def session_actor(session: Session, raw: str) -> tuple[Actor, str] | None:
    row = session.execute(
        select(AgentSession, Agent)
        .join(Agent, Agent.id == AgentSession.agent_id)
        .where(AgentSession.id == token_digest(raw))
    ).first()
    if row is None:
        return None
    sess, agent = row
    if sess.expires_at < utcnow() or not agent.active:
        return None
    return Actor(
        account_id=agent.account_id, kind="agent", id=agent.id, role=agent.role, name=agent.name
    ), sess.csrf_token


def logout(session: Session, raw: str) -> None:
    session.execute(delete(AgentSession).where(AgentSession.id == token_digest(raw)))


def set_availability_offline_all(session: Session, account_id: int) -> None:
    session.execute(update(Agent).where(Agent.account_id == account_id).values(availability="offline"))
