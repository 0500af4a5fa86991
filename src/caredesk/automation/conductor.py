"""The bot conductor: for each customer message on an inbox with automation on, decide (see decide.py)
and act: ask for what is missing, confirm before changing data, run the action, or hand over honestly
with a case brief, a named team or agent and a realistic wait.

Runs as a pipeline step (at least once): a message already handled is skipped, action runs carry an
idempotency key, and the state is written in one transaction with the bot's replies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.accounts.models import Agent, Inbox
from caredesk.automation import config as cfg
from caredesk.automation.actions import OK, REFUSED, Outcome, confirm_text, preview_action, run_action
from caredesk.automation.brief import mood_of, update_brief
from caredesk.automation.connectors import ConnectorError
from caredesk.automation.decide import OOS, Decision, Situation, decide
from caredesk.automation.escalation import is_sensitive
from caredesk.automation.facts import known_facts, reasks, remember
from caredesk.automation.intents import predict_intent
from caredesk.automation.knowledge import DONT_KNOW, answer_text, knowledge_base
from caredesk.automation.understanding import Context, Understanding, default_understander, from_signals
from caredesk.contacts.models import Contact
from caredesk.conversations.actions import send_reply
from caredesk.conversations.models import Conversation, Message
from caredesk.conversations.serialize import message_json
from caredesk.platform.errors import CaredeskError
from caredesk.platform.events import record_event
from caredesk.platform.jobs import JobContext, RetryLater
from caredesk.routing import router
from caredesk.routing.queue import queue_status, wait_phrase

log = logging.getLogger(__name__)

REASONS = {
    "human_request": "the customer asked for a person",
    "frustration": "the customer is frustrated",
    "sensitive": "a sensitive situation",
    "low_confidence": "the bot did not understand twice",
    "loop": "the same request came back without progress",
    "failed_action": "an action failed",
    "policy": "beyond what the bot may do",
    "vip": "a VIP customer",
    "no_self_service": "no self-service for this request",
    "no_automation_configured": "no automation is configured",
}


def bot_actor(account_id: int) -> Actor:
    return Actor(account_id=account_id, kind="bot", role="agent", name="Assistant")


@dataclass
class Snapshot:
    account_id: int
    conversation_id: int
    contact_id: int
    text: str
    incoming: bool
    signals: dict[str, Any]
    automation_on: bool
    assigned: bool
    state: dict[str, Any]
    known: dict[str, Any]
    contact: dict[str, Any]
    vip: bool
    history: list[str]
    spec: cfg.AutomationSpec | None
    done: bool


def _snapshot(session: Session, message_id: int, conversation_id: int) -> Snapshot | None:
    m = session.get(Message, message_id)
    conv = session.get(Conversation, conversation_id)
    if m is None or conv is None:
        return None
    inbox = session.get(Inbox, conv.inbox_id)
    contact = session.get(Contact, conv.contact_id)
    state = dict(conv.custom_attributes.get("bot") or {})
    history = list(
        session.execute(
            select(Message.content)
            .where(Message.conversation_id == conv.id, Message.type == "incoming", Message.id < message_id)
            .order_by(Message.id.desc())
            .limit(10)
        ).scalars()
    )[::-1]
    return Snapshot(
        account_id=conv.account_id,
        conversation_id=conv.id,
        contact_id=conv.contact_id,
        text=m.content,
        incoming=m.type == "incoming" and not m.spam,
        signals=dict(m.signals or {}),
        automation_on=bool(inbox and inbox.automation),
        assigned=conv.assignee_id is not None,
        state=state,
        known=known_facts(conv, contact),
        contact={
            "name": contact.name if contact else "",
            "first_name": (contact.name.split() or [""])[0] if contact and contact.name else "",
            "email": contact.email if contact else None,
        },
        vip=bool(contact and contact.vip),
        history=history,
        spec=cfg.active_config(session, conv.account_id),
        done=int(state.get("last_message_id", 0)) >= message_id,
    )


async def conduct(ctx: JobContext, message_id: int, conversation_id: int) -> None:
    services = ctx.services
    snap = await ctx.db.read(_snapshot, message_id, conversation_id)
    if snap is None or not snap.incoming or snap.done or not snap.automation_on:
        return  # inboxes without automation are left entirely to people (and routing)
    u = from_signals(snap.signals)
    if u is None:
        u = await default_understander(services)(
            snap.text, Context(snap.account_id, snap.conversation_id, snap.history, snap.known)
        )
    if u.intent is None and not u.escalate:
        u = await _with_intent(services, snap, u)
    d = decide(
        Situation(
            snap.text,
            u,
            snap.spec,
            snap.automation_on,
            bool(snap.state.get("mode") == "handed_off"),
            snap.assigned,
            snap.vip,
            snap.known,
            snap.state,
        )
    )
    outcome: Outcome | None = None
    if d.kind == "clarify" or (d.kind == "handoff" and d.reason in ("low_confidence", "no_self_service")):
        d = await _knowledge(services, snap, u, d)
    if d.kind == "preview" and d.action:
        d = await _preview(services, snap, d)
    if d.kind == "execute" and d.action:
        actor = bot_actor(snap.account_id)
        try:
            outcome = await run_action(
                services,
                actor,
                d.action,
                {**snap.known, **d.facts, **d.slots},
                conversation_id=snap.conversation_id,
                idempotency_key=f"bot:{message_id}:{d.action}",
                contact=snap.contact,
            )
        except CaredeskError as exc:
            outcome = Outcome("failed", d.action, reason=exc.detail)
        if outcome.status != OK:
            d.kind, d.reason = "handoff", "policy" if outcome.status == REFUSED else "failed_action"
    await ctx.db.write(_apply, snap, message_id, u, d, outcome)


async def _with_intent(services: Any, snap: Snapshot, u: Understanding) -> Understanding:
    """The account's own intent model (trained from its examples, caredesk.automation.intents)."""
    data_dir = getattr(getattr(services, "settings", None), "data_dir", None)
    if data_dir is None:
        return u
    got = await anyio.to_thread.run_sync(predict_intent, data_dir, snap.account_id, snap.text)
    return replace(u, intent=got[0], confidence=got[1]) if got else u


async def _knowledge(services: Any, snap: Snapshot, u: Understanding, d: Decision) -> Decision:
    """A message no action handles: answer from the help articles, or say plainly the bot doesn't know."""
    if (d.state.get("pending") or {}).get("action"):
        return d
    kb = knowledge_base(services, snap.account_id)
    if kb is None:
        return d
    found = await anyio.to_thread.run_sync(kb.search, snap.text)
    text = answer_text(found)
    if text is not None:
        best = found.best
        assert best is not None
        d.kind, d.reason, d.text = "reply", "knowledge", text
        d.state["low_confidence"] = 0
        d.state["knowledge"] = {"article_id": best.article_id, "title": best.title, "url": best.url}
        return d
    if d.kind == "clarify" and (u.question or u.intent == OOS):
        d.kind, d.reason, d.text = "reply", "unknown", DONT_KNOW
        d.state["offered_person"] = True
    return d


async def _preview(services: Any, snap: Snapshot, d: Decision) -> Decision:
    assert snap.spec is not None and d.action is not None
    action = snap.spec.action(d.action)
    assert action is not None
    try:
        values, refusal = await preview_action(
            services, snap.account_id, d.action, {**snap.known, **d.facts, **d.slots}
        )
    except (ConnectorError, CaredeskError) as exc:
        d.kind, d.reason, d.text = "handoff", "failed_action", str(exc)
        return d
    if refusal:
        d.kind, d.reason, d.text = "handoff", "policy", refusal
        d.slots = values
        return d
    mine = {k: v for k, v in values.items() if k in action.slots}
    d.state["pending"] = {"action": action.name, "awaiting": "confirm", "slots": mine, "strikes": 0}
    d.kind, d.slots, d.text = "confirm", mine, ""
    return d


def _apply(
    session: Session, snap: Snapshot, message_id: int, u: Understanding, d: Decision, outcome: Outcome | None
) -> None:
    conv = session.get(Conversation, snap.conversation_id)
    if conv is None:
        return
    state = dict(conv.custom_attributes.get("bot") or {})
    if int(state.get("last_message_id", 0)) >= message_id:
        return  # handled by an earlier run of this job
    if state.get("rev", 0) != snap.state.get("rev", 0):
        raise RetryLater("conversation changed while deciding", after=0.05)
    new_facts = remember(session, conv, d.facts)
    if outcome is not None and outcome.status == OK:
        remember(
            session,
            conv,
            {k: v for k, v in outcome.slots.items() if not isinstance(v, dict) and k in (d.slots or {})},
        )
    spec = snap.spec
    action = spec.action(d.action) if spec and d.action else None
    intent_name = u.intent if u.intent and u.intent != OOS else ""
    mood = mood_of(
        u.frustration, u.sentiment, sensitive=is_sensitive(snap.text) or u.escalate_reason == "sensitive"
    )
    update_brief(
        conv,
        goal=(action.title if action else intent_name.replace("_", " ") or None),
        intent=intent_name or None,
        customer_words=snap.text,
        facts=new_facts or None,
        mood=mood,
    )
    _flag_reasks(session, conv, message_id)
    bot = bot_actor(conv.account_id)
    replies: list[str] = []
    if d.kind in ("ask", "clarify", "reply") and d.text:
        replies.append(d.text)
        if d.kind == "ask" and action:
            asked = (d.state.get("pending") or {}).get("awaiting") or "details"
            update_brief(conv, step=("bot", f"Asked for {asked} ({action.title})"))
        if d.reason == "knowledge":
            art = d.state.get("knowledge") or {}
            update_brief(conv, step=("bot", f'Answered from the help article "{art.get("title", "")}"'))
        if d.reason == "unknown":
            update_brief(conv, step=("bot", "Did not know the answer; offered a person"))
        if d.reason == "cancelled" and action:
            update_brief(conv, step=("bot", f"Offered {action.title.lower()}; the customer declined"))
    elif d.kind == "confirm" and action:
        replies.append((d.text + " " if d.text else "") + confirm_text(action, d.slots, snap.contact))
        update_brief(
            conv,
            step=("bot", f"Asked the customer to confirm {action.title.lower()} ({_slots_text(d.slots)})"),
        )
    elif d.kind == "execute" and outcome is not None and action:
        replies.append(outcome.reply)
        update_brief(
            conv,
            verified={k: v for k, v in outcome.slots.items() if k in action.slots},
            step=("bot", f"{action.title}: done ({_slots_text(outcome.slots)})"),
            promise=("bot", outcome.promise) if outcome.promise else None,
        )
    state = dict(d.state)
    if d.kind == "handoff":
        replies.extend(_handoff(session, conv, snap, u, d, outcome, action))
        state["mode"] = "handed_off"
        state["handoff_reason"] = d.reason
    state["last_message_id"] = message_id
    state["rev"] = int(state.get("rev", 0)) + 1
    conv.custom_attributes = {**conv.custom_attributes, "bot": state}
    for text in replies:
        send_reply(session, bot, conv.id, text, meta={"bot": True, "decision": d.kind, "reason": d.reason})
    if d.kind == "silent" and not new_facts:
        return  # nothing an agent's screen needs to redraw
    record_event(
        session,
        conv.account_id,
        "conversation.updated",
        {
            "id": conv.id,
            "change": "case_brief",
            "case_brief": conv.case_brief,
            "custom_attributes": conv.custom_attributes,
        },
        conversation_id=conv.id,
        contact_id=conv.contact_id,
    )


def _slots_text(slots: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in slots.items() if not isinstance(v, dict))


def _handoff(
    session: Session,
    conv: Conversation,
    snap: Snapshot,
    u: Understanding,
    d: Decision,
    outcome: Outcome | None,
    action: cfg.ActionSpec | None,
) -> list[str]:
    reason = d.reason
    why = REASONS.get(reason, reason.replace("_", " "))
    detail = (
        (outcome.reason if outcome and outcome.reason else d.text)
        if reason in ("policy", "failed_action")
        else ""
    )
    what = f"{action.title}" if action else "the request"
    if reason in ("policy", "failed_action"):
        tried = _slots_text(d.slots or (outcome.slots if outcome else {}))
        update_brief(conv, step=("bot", f"Tried {what.lower()} ({tried}): {detail}"))
    update_brief(
        conv,
        handoff_reason=why + (f": {detail}" if detail else ""),
        step=("bot", f"Handed over to a person: {why}"),
    )
    rank = 1
    if reason in ("frustration", "sensitive", "vip", "loop") or u.frustration >= 0.5:
        rank = 2
    if reason == "vip" and u.frustration >= 0.7:
        rank = 3
    spec = snap.spec
    intent = u.intent or (conv.case_brief or {}).get("intent")
    skill = (spec.intent_skills.get(intent, intent) if spec else intent) if intent else None
    router.enqueue(session, conv, reason=reason, rank=rank, skill=skill, language=u.language)
    placed = router.try_assign(session, conv.id)
    router.drain(session, conv.account_id)  # anyone else waiting for the same capacity goes first by priority
    first = {
        "human_request": "Of course. I'm the automated assistant, so I'm bringing in a person.",
        "sensitive": "I'm so sorry. This deserves a person's full attention, so I'm bringing in a "
        "colleague right away.",
        "frustration": "I'm sorry this has been frustrating. I'm bringing in a person who can sort it out.",
        "policy": "That's beyond what I'm allowed to do on my own, so I'm passing it to a colleague "
        "who can approve it.",
        "failed_action": action.failure_reply
        if action
        else "I couldn't complete that myself, so I'm bringing in a colleague.",
        "loop": "I don't seem to be getting you what you need, so I'm bringing in a person.",
        "low_confidence": "I'm not sure I understand, and I don't want to waste your time, so I'm "
        "bringing in a person.",
        "vip": "Thanks for getting in touch. A member of our team will look after this personally.",
    }.get(reason, "I'm bringing in a person from our team to help with this.")
    if placed is not None and placed.agent_id is not None:
        agent = session.get(Agent, placed.agent_id)
        name = (agent.name.split() or ["A colleague"])[0] if agent else "A colleague"
        team = f" from our {placed.team_name} team" if placed.team_name else ""
        rest = (
            f"{name}{team} will take it from here. "
            "They can see everything you've told me, so you won't have to repeat anything."
        )
    else:
        cb = spec.escalation.callback_above_minutes if spec else 15.0
        rest = wait_phrase(queue_status(session, conv.account_id, conv.id, callback_above_minutes=cb))
        rest += " Everything you've told me is passed on, so you won't have to repeat anything."
    return [f"{first} {rest}".strip()]


def _flag_reasks(session: Session, conv: Conversation, message_id: int) -> None:
    """Flag agent or bot messages since the customer's previous message that asked for something already
    known."""
    prev_in = (
        session.execute(
            select(Message.id)
            .where(Message.conversation_id == conv.id, Message.type == "incoming", Message.id < message_id)
            .order_by(Message.id.desc())
            .limit(1)
        ).scalar()
        or 0
    )
    contact = session.get(Contact, conv.contact_id)
    known_before = known_facts(conv, contact)
    if not known_before:
        return
    outgoing = session.execute(
        select(Message).where(
            Message.conversation_id == conv.id,
            Message.type == "outgoing",
            Message.id > prev_in,
            Message.id < message_id,
        )
    ).scalars()
    count = 0
    for m in outgoing:
        asked = reasks(m.content, known_before)
        if asked and not m.meta.get("reask"):
            m.meta = {**m.meta, "reask": asked}
            count += 1
            session.flush()
            record_event(
                session,
                conv.account_id,
                "message.updated",
                message_json(m),
                conversation_id=conv.id,
                contact_id=conv.contact_id,
            )
    if count:
        conv.signals = {**(conv.signals or {}), "reasks": int((conv.signals or {}).get("reasks", 0)) + count}
