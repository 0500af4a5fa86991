"""Routing in the message pipeline, and the sweep that keeps the queue honest.

The pipeline step queues conversations that need a person (automation off on the inbox, or the bot
handed over) and serves the queue. The `routing.sweep` job (every SWEEP_SECONDS) re-routes the
conversations of agents who went offline, serves the queue when capacity frees up, and warns
before SLA breaches.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.models import Account, Inbox
from caredesk.conversations.actions import add_activity
from caredesk.conversations.models import Conversation
from caredesk.conversations.pipeline import Pipeline
from caredesk.platform.events import record_event
from caredesk.platform.jobs import JobContext, enqueue
from caredesk.platform.models import utcnow
from caredesk.routing import router
from caredesk.routing.hours import parse_hours
from caredesk.routing.models import QueueEntry
from caredesk.routing.sla import WARNING, clocks, worst

SWEEP_SECONDS = 15.0


def needs_person(session: Session, conv: Conversation) -> bool:
    if conv.status == "resolved" or conv.assignee_id is not None:
        return False
    inbox = session.get(Inbox, conv.inbox_id)
    bot = dict(conv.custom_attributes.get("bot") or {})
    return inbox is None or not inbox.automation or bot.get("mode") == "handed_off"


def route_after_message(session: Session, conversation_id: int) -> list[router.Placement]:
    conv = session.get(Conversation, conversation_id)
    if conv is None:
        return []
    if needs_person(session, conv) and session.get(QueueEntry, conv.id) is None:
        intent = (conv.case_brief or {}).get("intent") or (conv.signals or {}).get("intent")
        router.enqueue(session, conv, reason="new", skill=intent if isinstance(intent, str) else None)
    return router.drain(session, conv.account_id)


async def routing_step(ctx: JobContext, message_id: int, conversation_id: int) -> None:
    await ctx.db.write(route_after_message, conversation_id)
    registry = getattr(ctx.services, "registry", None)
    if registry is not None and registry.get("routing.sweep") is not None:
        # Keeps the periodic sweep alive while messages flow (one job per 15 s bucket, by idempotency key).
        await ctx.db.write(schedule_sweep)


def sweep_account(session: Session, account_id: int) -> dict[str, Any]:
    requeued = router.requeue_offline(session, account_id)
    placed = router.drain(session, account_id)
    warned = warn_sla(session, account_id)
    return {"requeued": requeued, "assigned": [p.conversation_id for p in placed], "sla_warnings": warned}


def warn_sla(session: Session, account_id: int, limit: int = 500) -> list[int]:
    acc = session.get(Account, account_id)
    policy = dict((acc.settings if acc else {}).get("sla") or {})
    if not policy:
        return []
    hours = parse_hours(acc.settings if acc else {})
    now = utcnow()
    out = []
    convs = session.execute(
        select(Conversation)
        .where(Conversation.account_id == account_id, Conversation.status == "open")
        .order_by(Conversation.id)
        .limit(limit)
    ).scalars()
    for conv in convs:
        cs = clocks(conv, policy, hours, now)
        state = worst(cs)
        routing = dict(conv.custom_attributes.get("routing") or {})
        if state == routing.get("sla_state", "ok"):
            continue
        routing["sla_state"] = state
        conv.custom_attributes = {**conv.custom_attributes, "routing": routing}
        if state == "ok":
            continue
        at_risk = [c for c in cs if c.state != "ok"]
        add_activity(
            session,
            conv,
            f"SLA {state}: "
            + ", ".join(f"{c.kind.replace('_', ' ')} due {c.due_at:%H:%M} UTC" for c in at_risk),
            {"action": f"sla_{state}"},
        )
        record_event(
            session,
            account_id,
            f"sla.{state}",
            {"conversation_id": conv.id, "clocks": [c.as_json() for c in cs]},
            conversation_id=conv.id,
            contact_id=conv.contact_id,
        )
        entry = session.get(QueueEntry, conv.id)
        if entry is not None:  # SLA risk raises priority in the queue
            entry.rank = max(entry.rank, 2 if state == WARNING else 3)
        out.append(conv.id)
    return out


def sweep_all(session: Session) -> dict[int, dict[str, Any]]:
    ids = list(session.execute(select(Account.id)).scalars())
    return {aid: sweep_account(session, aid) for aid in ids}


def _account_ids(session: Session) -> list[int]:
    return list(session.execute(select(Account.id)).scalars())


async def sweep_job(ctx: JobContext) -> None:
    # One write per account, not one for all: the writer is shared with every customer message, and a
    # single long transaction would hold them all back while it runs.
    for account_id in await ctx.db.read(_account_ids):
        await ctx.db.write(sweep_account, account_id)
    await ctx.db.write(schedule_sweep)


def schedule_sweep(session: Session, delay: float = SWEEP_SECONDS) -> None:
    bucket = int((time.time() + delay) // SWEEP_SECONDS)
    enqueue(session, "routing.sweep", {}, key=f"routing.sweep:{bucket}", delay=delay, max_attempts=3)


def install(pipeline: Pipeline) -> None:
    pipeline.add("routing", routing_step)


def register(services: Any) -> None:
    """Registers the sweep job (called from the automation API's setup, which receives the services)."""
    services.registry.add("routing.sweep", sweep_job)
