"""Agent login (argon2 + session cookie + CSRF token) and logout, with login throttling."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from caredesk.accounts import actions as acc
from caredesk.platform.errors import CaredeskError
from caredesk.web.api.schemas import LoginIn
from caredesk.web.deps import SESSION_COOKIE, ActorDep, ServicesDep, forget_credentials

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TooManyAttempts(CaredeskError):
    status = 429
    title = "Too many requests"


@router.post("/login")
async def login(body: LoginIn, request: Request, response: Response, svc: ServicesDep) -> dict[str, Any]:
    limiter = svc.extras["login_limiter"]
    client = request.client.host if request.client else "unknown"
    for key in (f"login-ip:{client}", f"login-email:{body.email.lower()}"):
        wait = limiter.check(key)
        if wait is not None:
            raise TooManyAttempts(
                f"too many login attempts; try again in {int(wait) + 1} s", retry_after=int(wait) + 1
            )

    def w(s: Session) -> tuple[str, str, dict[str, Any]]:
        raw, csrf, agent = acc.login(s, body.email, body.password)
        return raw, csrf, acc.agent_json(agent)

    raw, csrf, agent = await svc.db.write(w)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        httponly=True,
        samesite="lax",
        secure=svc.settings.cookie_secure,
        max_age=acc.SESSION_DAYS * 86400,
        path="/",
    )
    return {"agent": agent, "csrf_token": csrf}


@router.post("/logout", status_code=204)
async def logout(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        await svc.db.write(acc.logout, raw)
    forget_credentials(svc)
    resp = Response(status_code=204)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/csrf")
async def csrf(request: Request, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    raw = request.cookies.get(SESSION_COOKIE)
    found = await svc.db.read(acc.session_actor, raw) if raw else None
    return {"csrf_token": found[1] if found else None}
