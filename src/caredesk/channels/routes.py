"""Webhook URLs: `/webhooks/<channel>/<inbox public token>` for every provider.

The handler is the same for all of them: find the inbox, verify the signature on the raw bytes,
parse, write the batch in one transaction, and only then answer 2xx. Bad signature: 401/403 and
nothing written. Malformed body: 400 with the reason, and the body kept for inspection.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import URL, QueryParams

from caredesk.channels.base import (
    ChannelAdapter,
    InboxInfo,
    IngestResult,
    Malformed,
    Parsed,
    Rejected,
    WebhookRequest,
    checked,
    ingest,
    load_inbox_by_token,
)
from caredesk.conversations.inbound import record_malformed
from caredesk.platform.errors import NotFound
from caredesk.services import Services
from caredesk.web.deps import ActorDep, ServicesDep
from caredesk.web.hotpath import HotRequest, HotResponse, HotRoute
from caredesk.web.problems import problem

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

_INBOX_TTL = 5.0  # seconds an inbox lookup is reused: config edits apply within this delay


def adapters() -> dict[str, ChannelAdapter]:
    """URL segment -> adapter. Imported lazily so that a broken adapter cannot break the others' import."""
    reg: dict[str, ChannelAdapter] = getattr(adapters, "_cache", {})
    if reg:
        return reg
    from caredesk.channels.api.adapter import ApiAdapter
    from caredesk.channels.messenger.adapter import MessengerAdapter
    from caredesk.channels.telegram.adapter import TelegramAdapter
    from caredesk.channels.twilio.adapter import TwilioAdapter
    from caredesk.channels.voice.adapter import VoiceAdapter
    from caredesk.channels.whatsapp_cloud.adapter import WhatsAppCloudAdapter

    reg = {
        "twilio": TwilioAdapter(),
        "whatsapp": WhatsAppCloudAdapter(),
        "telegram": TelegramAdapter(),
        "messenger": MessengerAdapter(),
        "voice": VoiceAdapter(),
        "api": ApiAdapter(),
    }
    adapters._cache = reg  # type: ignore[attr-defined]
    return reg


async def find_inbox(svc: Services, channel: str, token: str) -> tuple[ChannelAdapter, InboxInfo]:
    adapter = adapters().get(channel)
    if adapter is None or len(token) > 64:
        raise NotFound("no such webhook")
    cache: dict[str, tuple[float, InboxInfo | None]] = svc.extras.setdefault("channels.inbox_cache", {})
    hit = cache.get(token)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        info = hit[1]
    else:
        info = await svc.db.read(load_inbox_by_token, token)
        if len(cache) > 10_000:
            cache.clear()
        cache[token] = (now + _INBOX_TTL, info)
    if info is None or info.channel not in adapter.channels:
        raise NotFound("no such webhook")
    return adapter, info


async def raw_request(request: Request, svc: Services) -> WebhookRequest:
    body = await request.body()
    query = request.url.query
    suffix = request.url.path + (f"?{query}" if query else "")
    public = svc.settings.public_url.rstrip("/") + suffix
    return WebhookRequest(
        method=request.method,
        url=public,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        query=dict(request.query_params),
        alt_urls=(str(request.url),),
    )


async def _keep_malformed(svc: Services, inbox: InboxInfo, req: WebhookRequest, reason: str) -> None:
    body = req.body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")  # PostgreSQL text: no NUL
    await svc.db.write(record_malformed, inbox.account_id, inbox.id, body, req.header("content-type"), reason)


@router.get("/webhooks/{channel}/{token}", include_in_schema=False)
async def webhook_handshake(channel: str, token: str, request: Request, svc: ServicesDep) -> Response:
    """Providers that check a URL before using it (Meta's hub.challenge) call it with GET."""
    adapter, inbox = await find_inbox(svc, channel, token)
    challenge = getattr(adapter, "challenge", None)
    if challenge is None:
        return problem(405, "Method not allowed", "this webhook takes POST")
    req = await raw_request(request, svc)
    try:
        answer: str = challenge(inbox, req)
    except Rejected as exc:
        return problem(exc.status, "Forbidden" if exc.status == 403 else "Unauthorized", exc.reason)
    return PlainTextResponse(answer)


@router.post("/webhooks/{channel}/{token}")
async def webhook(channel: str, token: str, request: Request, svc: ServicesDep) -> Response:
    adapter, inbox = await find_inbox(svc, channel, token)
    req = await raw_request(request, svc)
    custom = getattr(adapter, "handle", None)
    if custom is not None:
        # Voice answers with instructions that depend on the state it just wrote.
        return await custom(svc, inbox, req)  # type: ignore[no-any-return]
    try:
        adapter.verify(inbox, req)
    except Rejected as exc:
        log.info("webhook rejected for inbox %s: %s", inbox.id, exc.reason)
        return problem(exc.status, "Forbidden" if exc.status == 403 else "Unauthorized", exc.reason)
    try:
        parsed: Parsed = checked(adapter.parse(inbox, req))
    except Malformed as exc:
        await _keep_malformed(svc, inbox, req, str(exc))
        return problem(400, "Bad request", f"malformed {channel} payload: {exc}")
    result: IngestResult = await svc.db.write(ingest, inbox.id, inbox.account_id, parsed)
    respond = getattr(adapter, "respond", None)
    if respond is not None:
        return respond(inbox, parsed, result)  # type: ignore[no-any-return]
    return JSONResponse(_summary(result))


async def webhook_hot(svc: Services, hot: HotRequest) -> HotResponse | None:
    """`webhook` without FastAPI in front, for deliveries that verify and parse; None hands the request to
    `webhook`, which answers refusals (401/403), malformed bodies (400, kept) and unknown inboxes itself."""
    channel, token = hot.params
    adapter = adapters().get(channel)
    if adapter is None or getattr(adapter, "handle", None) is not None:
        return None
    try:
        adapter, inbox = await find_inbox(svc, channel, token)
    except NotFound:
        return None
    scope = hot.scope
    query = scope["query_string"].decode("latin-1")
    suffix = scope["path"] + (f"?{query}" if query else "")
    req = WebhookRequest(
        method="POST",
        url=svc.settings.public_url.rstrip("/") + suffix,
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        body=hot.body,
        query=dict(QueryParams(scope["query_string"])),
        alt_urls=(str(URL(scope=scope)),),
    )
    try:
        adapter.verify(inbox, req)
        parsed: Parsed = checked(adapter.parse(inbox, req))
    except (Rejected, Malformed):
        return None
    result: IngestResult = await svc.db.write(ingest, inbox.id, inbox.account_id, parsed)
    respond = getattr(adapter, "respond", None)
    if respond is None:
        return HotResponse(200, orjson.dumps(_summary(result)))
    answer: Response = respond(inbox, parsed, result)
    ctype = answer.headers.get("content-type", "application/octet-stream")
    return HotResponse(answer.status_code, bytes(answer.body), ctype.encode("latin-1"))


HOT_ROUTES = [HotRoute("POST", re.compile(r"/webhooks/([a-z_]{1,32})/([A-Za-z0-9_\-]{1,64})"), webhook_hot)]


@router.get("/api/v1/conversations/{conversation_id}/channel-window", tags=["conversations"])
async def channel_window(conversation_id: int, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Whether a free-form reply can be sent now (WhatsApp's 24-hour window), for the agent UI to say so."""
    from caredesk.channels.whatsapp_cloud.window import window_state

    state = await svc.db.read(window_state, actor.account_id, conversation_id)
    if state is None:
        raise NotFound("conversation not found")
    return state


def _summary(result: IngestResult) -> dict[str, Any]:
    return {
        "ok": True,
        "messages": [r.message_id for r in result.results],
        "duplicates": sum(1 for r in result.results if r.duplicate),
        "statuses": result.statuses_applied,
        "replayed": result.replayed,
    }


def ingest_sync(session: Session, inbox: InboxInfo, parsed: Parsed) -> IngestResult:
    """For pollers (IMAP) that already run inside a write."""
    return ingest(session, inbox.id, inbox.account_id, parsed)


def _include_webhook_endpoints() -> None:
    # The accounts' outbound webhook endpoints (/api/v1/webhooks) are served with the channels.
    from caredesk.channels.webhooks.routes import router as endpoints

    router.include_router(endpoints)


_include_webhook_endpoints()
