"""The AI step of the message pipeline: annotate each incoming message with its signals.

Runs first in `message.process` (installed by `caredesk.app` through `install`), so the bot
conductor and routing read `message.signals`. What it writes:
- `message.signals`: the full `Signals.as_record()` (language, sentiment, frustration,
  escalation and reason, spam score, slots, intent when the account has a model);
- `message.spam`: the spam folder flag. Spam is never deleted; an agent restores it with
  `restore_from_spam`, after which the step will not flag that message again;
- `conversation.signals`: the latest mood and escalation, the mood at the start (for the
  care signals' "sentiment start vs end"), the language and the last intent;
- a `message.signals` event, so agent screens show the signals as they arrive.

Idempotent: a message that already has signals is skipped (a job runs at least once).
When the services carry a configured understander (`services.extras["understander"]`), it is
authoritative, as in `caredesk.automation.understanding.default_understander`, and this step
stays out of its way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.orm import Session

from caredesk.conversations.models import Conversation, Message
from caredesk.conversations.pipeline import Pipeline
from caredesk.platform.events import record_event
from caredesk.platform.jobs import JobContext

log = logging.getLogger(__name__)
STEP = "ai.signals"


def _pending_text(session: Session, message_id: int) -> tuple[int, str] | None:
    msg = session.get(Message, message_id)
    if msg is None or msg.type != "incoming" or (msg.signals or {}).get("language"):
        return None
    return msg.account_id, msg.content or ""


def _analyze(text: str, account_id: int, data_dir: Path | None) -> dict[str, Any]:
    from caredesk.ai.signals import analyze, models_root

    return analyze(text, account_id=account_id, models_dir=models_root(data_dir)).as_record()


def store_signals(session: Session, message_id: int, record: dict[str, Any]) -> bool:
    """Write one message's signals (and the conversation's summary of them). False if already done."""
    msg = session.get(Message, message_id)
    if msg is None or (msg.signals or {}).get("language"):
        return False
    restored = bool((msg.signals or {}).get("spam_restored"))
    msg.signals = {**(msg.signals or {}), **record}
    msg.spam = bool(record["spam"]) and not restored
    conv = session.get(Conversation, msg.conversation_id)
    if conv is not None and not msg.spam:
        before = dict(conv.signals or {})
        conv.signals = {
            **before,
            "sentiment": record["sentiment"],
            "sentiment_start": before.get("sentiment_start", record["sentiment"]),
            "frustration": record["frustration"],
            "escalate": record["escalate"] or bool(before.get("escalate")),
            "escalate_reason": record["escalate_reason"] or before.get("escalate_reason"),
            "language": record["language"],
            **({"intent": record["intent"]["name"]} if record.get("intent") else {}),
        }
    record_event(
        session,
        msg.account_id,
        "message.signals",
        {"id": msg.id, "signals": msg.signals, "spam": msg.spam},
        conversation_id=msg.conversation_id,
        contact_id=conv.contact_id if conv is not None else None,
    )
    return True


def restore_from_spam(session: Session, account_id: int, message_id: int) -> bool:
    """An agent's "not spam": take the message out of the spam folder for good."""
    msg = session.get(Message, message_id)
    if msg is None or msg.account_id != account_id:
        return False
    msg.spam = False
    msg.signals = {**(msg.signals or {}), "spam_restored": True}
    return True


async def annotate(ctx: JobContext, message_id: int, conversation_id: int) -> None:
    extras = getattr(ctx.services, "extras", None) or {}
    if extras.get("understander") is not None:
        return
    pending = await ctx.db.read(_pending_text, message_id)
    if pending is None:
        return
    account_id, text = pending
    # The models are CPU-bound: keep them off the event loop.
    settings = getattr(ctx.services, "settings", None)
    record = await anyio.to_thread.run_sync(_analyze, text, account_id, getattr(settings, "data_dir", None))
    await ctx.db.write(store_signals, message_id, record)


def install(pipeline: Pipeline) -> None:
    pipeline.add(STEP, annotate)
