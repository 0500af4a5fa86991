"""Agents' real-time stream: WebSocket at /api/v1/realtime, Server-Sent Events at /api/v1/events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import orjson
from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from caredesk.accounts.actions import actor_for_token, session_actor
from caredesk.accounts.actors import Actor
from caredesk.services import Services
from caredesk.web.deps import SESSION_COOKIE, ActorDep, ServicesDep
from caredesk.web.stream import pump

router = APIRouter(prefix="/api/v1", tags=["realtime"])


def _origin_ok(origin: str | None, host: str | None) -> bool:
    """Browsers send Origin on WebSocket upgrades; a foreign page must not ride an agent's cookie."""
    if not origin:
        return True  # not a browser (integrations use tokens)
    parsed = urlparse(origin)
    return bool(host) and parsed.netloc == host


@router.websocket("/realtime")
async def realtime_ws(ws: WebSocket, last_event_id: int | None = Query(default=None, ge=0)) -> None:
    svc: Services = ws.app.state.services
    actor: Actor | None = None
    token = ws.query_params.get("access_token")
    if token:
        actor = await svc.db.read(actor_for_token, token)
    else:
        if not _origin_ok(ws.headers.get("origin"), ws.headers.get("host")):
            await ws.close(code=4403, reason="origin not allowed")
            return
        raw = ws.cookies.get(SESSION_COOKIE)
        found = await svc.db.read(session_actor, raw) if raw else None
        actor = found[0] if found else None
    if actor is None:
        await ws.close(code=4401, reason="unauthorized")
        return
    await ws.accept()

    async def send(frame: dict[str, Any]) -> None:
        await ws.send_bytes(orjson.dumps(frame)) if ws.query_params.get("binary") else await ws.send_text(
            orjson.dumps(frame).decode()
        )

    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await pump(
            svc.db, svc.hub, actor.account_id, last_event_id, send, heartbeat=svc.settings.heartbeat_seconds
        )


@router.get("/events", response_class=StreamingResponse)
async def events_sse(
    request: Request,
    actor: ActorDep,
    svc: ServicesDep,
    last_event_id: int | None = Query(default=None, ge=0),
) -> StreamingResponse:
    header = request.headers.get("last-event-id")
    if header and header.isdigit():
        last_event_id = int(header)

    async def body() -> AsyncIterator[bytes]:
        import asyncio

        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

        async def send(frame: dict[str, Any]) -> None:
            line = b""
            if "id" in frame and frame.get("type") not in ("hello", "resync", "heartbeat"):
                line += b"id: " + str(frame["id"]).encode() + b"\n"
            line += b"data: " + orjson.dumps(frame) + b"\n\n"
            await queue.put(line)

        task = asyncio.create_task(
            pump(
                svc.db,
                svc.hub,
                actor.account_id,
                last_event_id,
                send,
                heartbeat=svc.settings.heartbeat_seconds,
            )
        )
        try:
            while True:
                if await request.is_disconnected():
                    break
                try:
                    yield await asyncio.wait_for(queue.get(), timeout=1.0)
                except TimeoutError:
                    if task.done():
                        break
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
