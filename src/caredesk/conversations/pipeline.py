"""What happens after a customer's message is stored: the `message.process` job runs the steps that
the domains above conversations (ai, automation, routing, care) register, in order.

Each step must be idempotent: a job runs at least once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.conversations.actions import add_activity, get_conversation
from caredesk.conversations.models import Conversation
from caredesk.platform.events import record_event
from caredesk.platform.jobs import JobContext
from caredesk.platform.models import utcnow

log = logging.getLogger(__name__)

Step = Callable[[JobContext, int, int], Awaitable[None]]  # (ctx, message_id, conversation_id)


class Pipeline:
    def __init__(self) -> None:
        self.steps: list[tuple[str, Step]] = []

    def add(self, name: str, step: Step) -> None:
        self.steps = [(n, s) for n, s in self.steps if n != name] + [(name, step)]

    async def run(self, ctx: JobContext) -> None:
        message_id = int(ctx.job.payload["message_id"])
        conversation_id = int(ctx.job.payload["conversation_id"])
        for _name, step in self.steps:
            await step(ctx, message_id, conversation_id)


def wake_snoozed(session: Session, conversation_id: int) -> bool:
    conv = session.get(Conversation, conversation_id)
    if conv is None or conv.status != "snoozed" or (conv.snoozed_until and conv.snoozed_until > utcnow()):
        return False
    conv = get_conversation(session, conv.account_id, conversation_id)
    conv.status, conv.snoozed_until = "open", None
    add_activity(session, conv, "Snooze ended; back in the queue", {"action": "woke"})
    record_event(
        session,
        conv.account_id,
        "conversation.updated",
        {"id": conv.id, "status": "open", "change": "woke"},
        conversation_id=conv.id,
        contact_id=conv.contact_id,
    )
    return True


def wake_due(session: Session) -> int:
    ids = list(
        session.execute(
            select(Conversation.id)
            .where(Conversation.status == "snoozed", Conversation.snoozed_until <= utcnow())
            .limit(500)
        ).scalars()
    )
    return sum(1 for cid in ids if wake_snoozed(session, cid))


async def wake_job(ctx: JobContext) -> None:
    await ctx.db.write(wake_snoozed, int(ctx.job.payload["conversation_id"]))


__all__ = ["Pipeline", "Step", "wake_due", "wake_job", "wake_snoozed"]
