"""Outbound webhooks: an account's own systems receive its domain events, signed with Standard Webhooks.

The events table is the outbox. Each endpoint keeps a `cursor` (the last seq of the account's event
stream it has been given); `dispatch` reads the events after it, enqueues one `webhook.deliver` job per
matching event (job key `webhook:<endpoint>:<seq>`, so a repeated dispatch enqueues nothing twice) and
moves the cursor, all in one transaction. A seq is only visible once every smaller seq of the stream is
committed (see platform/events.py), so reading "after the cursor" never skips one.

Dispatch runs right after a commit that recorded events for an account with endpoints (in the process
that committed), and from a periodic sweep job (`webhooks.sweep`) that catches up after a crash or
for another process's commits. Delivery jobs retry with the job system's backoff and jitter,
honour Retry-After, and end as dead letters after `MAX_ATTEMPTS` (about nine hours of trying).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.channels.api import standard_webhooks
from caredesk.channels.base import retry_after_seconds
from caredesk.channels.models import WebhookEndpoint
from caredesk.platform.audit import audit
from caredesk.platform.db import CommitOutcome
from caredesk.platform.errors import Invalid, NotFound
from caredesk.platform.events import EventRow, EventStream
from caredesk.platform.jobs import JobContext, PermanentFailure, RetryLater, enqueue
from caredesk.platform.models import utcnow

log = logging.getLogger(__name__)

# The event types an endpoint can subscribe to. `conversation.resolved` is a `conversation.updated`
# whose change is "resolved", offered on its own because it is what most integrations wait for.
EVENT_TYPES = (
    "message.created",
    "message.updated",
    "conversation.created",
    "conversation.updated",
    "conversation.resolved",
    "contact.updated",
    "contact.merged",
    "contact.unmerged",
)
PATTERN = re.compile(r"^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_]+)$")
MAX_ATTEMPTS = 16  # backoff 1 s, 2 s, 4 s ... ~9 hours in all, then a dead letter
DISPATCH_BATCH = 500
SWEEP_SECONDS = 30.0  # the backstop only: commits in this process dispatch at once
TIMEOUT_SECONDS = 10.0
MAX_ENDPOINTS = 50  # per account


def check_event_types(patterns: list[str]) -> list[str]:
    """Exact types, `prefix.*` or `*`; each must match at least one known type."""
    out: list[str] = []
    for p in patterns:
        p = p.strip()
        if not PATTERN.match(p) or not any(_match(p, t) for t in EVENT_TYPES):
            raise Invalid(f"unknown event type {p!r}; one of {', '.join(EVENT_TYPES)}, a prefix.* or *")
        if p not in out:
            out.append(p)
    if not out:
        raise Invalid("event_types needs at least one event type")
    return out


def check_url(url: str) -> str:
    url = url.strip()
    if not re.match(r"^https?://[^\s/?#]+", url, re.IGNORECASE) or len(url) > 2000:
        raise Invalid("url must be an http:// or https:// URL of at most 2000 characters")
    return url


def _match(pattern: str, type_: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return type_.startswith(pattern[:-1])
    return pattern == type_


def webhook_type(ev_type: str, data: dict[str, Any], patterns: list[str]) -> str | None:
    """The type this event is delivered as to an endpoint with these subscriptions, or None."""
    candidates = [ev_type]
    if ev_type == "conversation.updated" and data.get("change") == "resolved":
        candidates.insert(0, "conversation.resolved")
    for t in candidates:
        if t in EVENT_TYPES and any(_match(p, t) for p in patterns):
            return t
    return None


# ---- actions (account-scoped; another account's endpoint is "not found") ------------------------------


def endpoint_json(ep: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": ep.id,
        "url": ep.url,
        "event_types": list(ep.event_types),
        "description": ep.description,
        "active": ep.active,
        "created_at": ep.created_at.isoformat() + "Z",
        "updated_at": ep.updated_at.isoformat() + "Z",
    }
    if with_secret:
        out["secret"] = ep.secret
    return out


def _last_seq(session: Session, account_id: int) -> int:
    return int(
        session.execute(select(EventStream.last_seq).where(EventStream.account_id == account_id)).scalar()
        or 0
    )


def get_endpoint(session: Session, account_id: int, endpoint_id: int) -> WebhookEndpoint:
    ep = session.get(WebhookEndpoint, endpoint_id)
    if ep is None or ep.account_id != account_id:
        raise NotFound("webhook endpoint not found")
    return ep


def list_endpoints(session: Session, account_id: int) -> list[WebhookEndpoint]:
    return list(
        session.execute(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.account_id == account_id)
            .order_by(WebhookEndpoint.id)
        ).scalars()
    )


def do_create_endpoint(
    session: Session,
    actor: Actor,
    *,
    url: str,
    event_types: list[str],
    description: str = "",
    secret: str | None = None,
    active: bool = True,
) -> WebhookEndpoint:
    actor.require("admin")
    count = session.execute(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == actor.account_id)
    ).scalar_one()
    if count >= MAX_ENDPOINTS:
        raise Invalid(f"an account has at most {MAX_ENDPOINTS} webhook endpoints")
    if secret is not None:
        try:
            standard_webhooks.secret_key(secret)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
    ep = WebhookEndpoint(
        account_id=actor.account_id,
        url=check_url(url),
        secret=secret or standard_webhooks.new_secret(),
        event_types=check_event_types(event_types),
        description=description,
        active=active,
        # Events from now on: an endpoint does not receive the account's history.
        cursor=_last_seq(session, actor.account_id),
    )
    session.add(ep)
    session.flush()
    audit(session, actor.account_id, actor.audit_ref, "webhook.created", "webhook", ep.id, {"url": ep.url})
    schedule_sweep(session, 0.0)
    return ep


def do_update_endpoint(
    session: Session, actor: Actor, endpoint_id: int, changes: dict[str, Any]
) -> WebhookEndpoint:
    actor.require("admin")
    ep = get_endpoint(session, actor.account_id, endpoint_id)
    if "url" in changes:
        ep.url = check_url(changes["url"])
    if "event_types" in changes:
        ep.event_types = check_event_types(changes["event_types"])
    if "description" in changes:
        ep.description = changes["description"]
    if changes.get("rotate_secret"):
        ep.secret = standard_webhooks.new_secret()
    if "active" in changes and changes["active"] != ep.active:
        ep.active = bool(changes["active"])
        if ep.active:
            # Paused means paused: what happened meanwhile is not sent when it is switched back on.
            ep.cursor = _last_seq(session, actor.account_id)
            schedule_sweep(session, 0.0)
    ep.updated_at = utcnow()
    session.flush()
    audit(
        session,
        actor.account_id,
        actor.audit_ref,
        "webhook.updated",
        "webhook",
        ep.id,
        {k: v for k, v in changes.items() if k != "rotate_secret"}
        | ({"secret": "rotated"} if changes.get("rotate_secret") else {}),
    )
    return ep


def do_delete_endpoint(session: Session, actor: Actor, endpoint_id: int) -> None:
    actor.require("admin")
    ep = get_endpoint(session, actor.account_id, endpoint_id)
    audit(session, actor.account_id, actor.audit_ref, "webhook.deleted", "webhook", ep.id, {"url": ep.url})
    session.delete(ep)


# ---- dispatch: events -> delivery jobs ----------------------------------------------------------------


def dispatch(session: Session, account_id: int, limit: int | None = None) -> int:
    """Enqueue the deliveries for events after each active endpoint's cursor; returns the events read
    (== `limit` means there may be more). Endpoint rows are locked on PostgreSQL so two dispatchers
    do not interleave; the job keys would make a double dispatch harmless anyway."""
    eps = list(
        session.execute(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.account_id == account_id, WebhookEndpoint.active.is_(True))
            .order_by(WebhookEndpoint.id)
            .with_for_update()
        ).scalars()
    )
    if not eps:
        return 0
    limit = limit or DISPATCH_BATCH
    low = min(ep.cursor for ep in eps)
    rows = list(
        session.execute(
            select(EventRow.seq, EventRow.type, EventRow.data)
            .where(EventRow.account_id == account_id, EventRow.seq > low)
            .order_by(EventRow.seq)
            .limit(limit)
        ).all()
    )
    if not rows:
        last = _last_seq(session, account_id)
        if last > low:
            # The events after the cursor were pruned before they were dispatched: say so, loudly.
            log.warning(
                "webhooks: account %s events %s..%s were pruned before dispatch", account_id, low + 1, last
            )
            for ep in eps:
                ep.cursor = max(ep.cursor, last)
        return 0
    if rows[0].seq > low + 1:
        log.warning(
            "webhooks: account %s events %s..%s were pruned before dispatch",
            account_id,
            low + 1,
            rows[0].seq - 1,
        )
    top = rows[-1].seq
    for ep in eps:
        patterns = list(ep.event_types)
        for seq, type_, data in rows:
            if seq <= ep.cursor:
                continue
            wtype = webhook_type(type_, data or {}, patterns)
            if wtype is not None:
                enqueue(
                    session,
                    "webhook.deliver",
                    {"endpoint_id": ep.id, "seq": seq, "type": wtype},
                    account_id=account_id,
                    key=f"webhook:{ep.id}:{seq}",
                    max_attempts=MAX_ATTEMPTS,
                )
        ep.cursor = max(ep.cursor, top)
    return len(rows)


def accounts_behind(session: Session) -> list[int]:
    """Accounts with an active endpoint whose cursor is behind the account's stream."""
    return list(
        session.execute(
            select(WebhookEndpoint.account_id)
            .join(EventStream, EventStream.account_id == WebhookEndpoint.account_id)
            .where(WebhookEndpoint.active.is_(True), WebhookEndpoint.cursor < EventStream.last_seq)
            .distinct()
        ).scalars()
    )


def accounts_with_endpoints(session: Session) -> set[int]:
    return set(
        session.execute(
            select(WebhookEndpoint.account_id).where(WebhookEndpoint.active.is_(True)).distinct()
        ).scalars()
    )


async def dispatch_all(db: Any, account_id: int) -> None:
    while await db.write(dispatch, account_id) >= DISPATCH_BATCH:
        pass


def schedule_sweep(session: Session, delay: float = SWEEP_SECONDS) -> None:
    bucket = int((time.time() + delay) // SWEEP_SECONDS)
    enqueue(session, "webhooks.sweep", {}, key=f"webhooks.sweep:{bucket}", delay=delay, max_attempts=3)


async def sweep_job(ctx: JobContext) -> None:
    """The backstop: catch up every account whose endpoints are behind, then come back while any exist."""
    try:
        for account_id in await ctx.db.read(accounts_behind):
            await dispatch_all(ctx.db, account_id)
    finally:
        if await ctx.db.read(accounts_with_endpoints):
            await ctx.db.write(schedule_sweep)


class Dispatcher:
    """After-commit hook: a commit that recorded events for an account with endpoints starts a dispatch
    for it at once (one at a time per account; commits meanwhile make it run once more)."""

    def __init__(self, db: Any, refresh_seconds: float = 5.0) -> None:
        self.db = db
        self.refresh_seconds = refresh_seconds
        self._accounts: set[int] = set()
        self._loaded_at = float("-inf")
        self._running: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()

    def forget(self) -> None:
        """Endpoints changed in this process: reload which accounts have some on the next commit."""
        self._loaded_at = float("-inf")

    async def on_commit(self, outcome: CommitOutcome) -> None:
        if not outcome.events:
            return
        if time.monotonic() - self._loaded_at > self.refresh_seconds:
            self._loaded_at = time.monotonic()
            try:
                self._accounts = await self.db.read(accounts_with_endpoints)
            except Exception:
                log.exception("webhooks: cannot load the accounts with endpoints")
                return
        for account_id in {ev.account_id for ev in outcome.events} & self._accounts:
            self.kick(account_id)

    def kick(self, account_id: int) -> None:
        if account_id in self._running:
            self._again.add(account_id)
            return
        self._running[account_id] = asyncio.get_running_loop().create_task(self._run(account_id))

    async def _run(self, account_id: int) -> None:
        try:
            while True:
                self._again.discard(account_id)
                try:
                    await dispatch_all(self.db, account_id)
                except Exception:
                    log.exception(
                        "webhooks: dispatch for account %s failed; the sweep will retry", account_id
                    )
                    return
                if account_id not in self._again:
                    return
        finally:
            self._running.pop(account_id, None)

    async def idle(self) -> None:
        """For tests and shutdown: wait for the dispatches under way."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)


# ---- delivery ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    url: str
    secret: str
    msg_id: str
    body: bytes


def message_id(account_id: int, seq: int) -> str:
    """The `webhook-id`: the same for every attempt of one event, the receiver's dedupe key."""
    return f"evt_{account_id}_{seq}"


def load_delivery(
    session: Session, account_id: int, endpoint_id: int, seq: int, wtype: str
) -> Delivery | None:
    ep = session.get(WebhookEndpoint, endpoint_id)
    if ep is None or ep.account_id != account_id or not ep.active:
        return None  # deleted or paused since: nothing to send
    ev = session.get(EventRow, (account_id, seq))
    if ev is None:
        raise PermanentFailure(f"event {seq} is no longer retained")
    body = orjson.dumps(
        {
            "type": wtype,
            "timestamp": ev.created_at.isoformat() + "Z",
            "event_id": ev.seq,
            "conversation_id": ev.conversation_id,
            "contact_id": ev.contact_id,
            "data": ev.data,
        }
    )
    return Delivery(ep.url, ep.secret, message_id(account_id, seq), body)


def _client(services: Any) -> httpx.AsyncClient:
    """One connection pool per process (a new client per delivery costs more than the delivery)."""
    extras: dict[str, Any] = services.extras if services is not None else {}
    client = extras.get("webhooks.client")
    if client is None or client.is_closed:
        client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False)
        extras["webhooks.client"] = client
    return client  # type: ignore[no-any-return]


async def deliver_webhook(ctx: JobContext) -> None:
    p = ctx.job.payload
    if ctx.job.account_id is None:
        raise PermanentFailure("a webhook delivery needs its account")
    d = await ctx.db.read(
        load_delivery, ctx.job.account_id, int(p["endpoint_id"]), int(p["seq"]), str(p["type"])
    )
    if d is None:
        return
    headers = {
        "content-type": "application/json",
        "user-agent": "Caredesk-Webhooks/1",
        **standard_webhooks.headers_for(d.secret, d.msg_id, d.body),
    }
    try:
        resp = await _client(ctx.services).post(d.url, content=d.body, headers=headers)
    except httpx.TimeoutException as exc:
        raise RetryLater(f"endpoint timed out: {type(exc).__name__}") from exc
    except httpx.HTTPError as exc:
        raise RetryLater(f"endpoint unreachable: {type(exc).__name__}") from exc
    if 200 <= resp.status_code < 300:
        return
    if resp.status_code == 410:
        raise PermanentFailure("the endpoint answered 410 Gone")
    # Any other answer is retried: a receiver that is down or misconfigured today may be fixed tomorrow.
    raise RetryLater(
        f"endpoint answered {resp.status_code}", after=retry_after_seconds(resp.headers.get("retry-after"))
    )


def install(services: Any) -> None:
    dispatcher = Dispatcher(services.db)
    services.extras["webhooks.dispatcher"] = dispatcher
    services.db.after_commit.append(dispatcher.on_commit)
    services.registry.add("webhook.deliver", deliver_webhook)
    services.registry.add("webhooks.sweep", sweep_job)
