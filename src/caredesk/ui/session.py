"""Who is looking at a page: the agent behind the session cookie (pages redirect to /login otherwise)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from caredesk.accounts.actions import agent_json, get_account, get_agent, session_actor
from caredesk.accounts.actors import Actor
from caredesk.services import Services
from caredesk.web.deps import SESSION_COOKIE


@dataclass
class Viewer:
    actor: Actor
    csrf: str
    me: dict[str, Any]
    account_name: str

    @property
    def is_admin(self) -> bool:
        return self.actor.role == "admin"


class LoginRequired(Exception):
    """Raised by page handlers; answered with a redirect to /login."""


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def viewer(request: Request) -> Viewer:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        raise LoginRequired()

    def r(s: Session) -> Viewer | None:
        found = session_actor(s, raw)
        if found is None:
            return None
        actor, csrf = found
        assert actor.id is not None
        return Viewer(
            actor,
            csrf,
            agent_json(get_agent(s, actor.account_id, actor.id)),
            get_account(s, actor.account_id).name,
        )

    v = await services(request).db.read(r)
    if v is None:
        raise LoginRequired()
    return v
