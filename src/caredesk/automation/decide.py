"""The conductor's decision for one customer message: a pure function of what is known, so every rule
(never ask twice, honest escalation, loops, confirmations) is visible in one place and tested directly."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

from caredesk.automation import escalation
from caredesk.automation.config import ActionSpec, AutomationSpec
from caredesk.automation.slots import SlotInvalid, extract, missing, normalise
from caredesk.automation.understanding import Understanding

CLARIFY = (
    "Sorry, I'm not sure I understood. Could you put it another way? I can check an order, change a delivery "
    "address, refund or return an order, or reset a password. And you can ask for a person at any time."
)
DECLINED_PERSON = "All right. Is there anything else I can help with?"
OOS = "oos"  # the intent model's "none of these" label: no action, perhaps a question for the knowledge base
CANCELLED = "No problem, I haven't changed anything. Is there anything else I can help with?"
# caredesk.ai.escalation's reasons -> the conductor's handoff reasons (others are kept as they are).
AI_REASONS = {
    "human_requested": "human_request",
    "safety": "sensitive",
    "bereavement": "sensitive",
    "vulnerability": "sensitive",
    "financial_hardship": "sensitive",
}
EMAIL_ME = re.compile(r"\b(e-?mail me|reply by e-?mail|answer by e-?mail|by e-?mail)\b", re.IGNORECASE)


@dataclass
class Decision:
    kind: str  # silent | ask | confirm | execute | handoff | clarify | reply | preview
    reason: str = ""
    action: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    state: dict[str, Any] = field(default_factory=dict)  # the bot state after this message
    facts: dict[str, Any] = field(default_factory=dict)  # facts learnt from this message
    intent: str | None = None


@dataclass(frozen=True)
class Situation:
    text: str
    understanding: Understanding
    spec: AutomationSpec | None
    automation_on: bool
    handed_off: bool
    assigned: bool
    vip: bool
    known: dict[str, Any]
    state: dict[str, Any]


def learn_facts(spec: AutomationSpec | None, text: str, offered: dict[str, Any]) -> dict[str, Any]:
    """Every slot value any action could use, found in this message (facts are learnt even when the bot
    is silent)."""
    if spec is None:
        return {}
    out: dict[str, Any] = {}
    for a in spec.actions:
        for name, value in extract(a, text, offered).items():
            if a.slots[name].fact:
                out.setdefault(name, value)
    return out


def _proceed(
    spec: AutomationSpec, action: ActionSpec, values: dict[str, Any], state: dict[str, Any], d: Decision
) -> Decision:
    provided = set(action.lookup.provide) if action.lookup else set()
    absent = missing(action, values, provided)
    mine = {k: v for k, v in values.items() if k in action.slots}
    if absent:
        state["pending"] = {"action": action.name, "awaiting": absent[0], "slots": mine, "strikes": 0}
        d.kind, d.action, d.slots, d.text = "ask", action.name, mine, action.slots[absent[0]].prompt
    elif action.changes_data:
        # Lookups and policy are checked before asking for confirmation (the executor turns preview into
        # confirm or handoff).
        state["pending"] = None
        d.kind, d.action, d.slots = "preview", action.name, mine
    else:
        state["pending"] = None
        d.kind, d.action, d.slots = "execute", action.name, mine
    d.state = state
    return d


def decide(s: Situation) -> Decision:
    u, spec = s.understanding, s.spec
    state: dict[str, Any] = {"pending": None, "low_confidence": 0, "asks": {}, **s.state}
    state["asks"] = dict(state.get("asks") or {})
    facts = learn_facts(spec, s.text, u.slots)
    known = {**s.known, **facts}
    d = Decision(kind="silent", state=state, facts=facts, intent=u.intent)
    if u.spam or not s.automation_on:
        return d
    if s.handed_off or s.assigned:
        if s.handed_off and not s.assigned and EMAIL_ME.search(s.text) and not state.get("reply_by"):
            state["reply_by"] = "email"
            d.kind, d.reason = "reply", "reply_by_email"
            d.text = (
                "Of course: no need to wait here. We'll answer by email"
                + (f" at {known['email']}" if known.get("email") else "")
                + "; everything you've told me is passed on."
            )
        return d

    def handoff(reason: str) -> Decision:
        state["pending"] = None
        d.kind, d.reason = "handoff", reason
        return d

    if spec is None:
        return handoff("no_automation_configured")
    esc = spec.escalation
    ai_reason = AI_REASONS.get(u.escalate_reason, u.escalate_reason)
    if escalation.wants_person(s.text) or (
        u.escalate and ai_reason in ("human_request", "explicit", "person")
    ):
        return handoff("human_request")
    if escalation.is_sensitive(s.text) or ai_reason == "sensitive":
        return handoff("sensitive")
    if u.frustration >= esc.frustration:
        return handoff("frustration")
    if u.escalate:
        return handoff(ai_reason or "escalation")
    if s.vip and esc.vip:
        return handoff("vip")

    if state.get("offered_person"):  # the bot said it did not know and offered a person
        state["offered_person"] = False
        yes = escalation.answer(s.text)
        if yes is True:
            return handoff("human_request")
        if yes is False:
            d.kind, d.reason, d.text = "reply", "declined_person", DECLINED_PERSON
            return d

    pending = state.get("pending")
    confident = u.intent if u.intent and u.intent != OOS and u.confidence >= esc.low_confidence else None
    if pending:
        action = spec.action(pending["action"])
        if action is None:
            state["pending"] = None
        elif pending["awaiting"] == "confirm":
            yes = escalation.answer(s.text)
            if yes is True:
                state["pending"] = None
                d.kind, d.action, d.slots, d.state = "execute", action.name, dict(pending["slots"]), state
                return d
            if yes is False:
                state["pending"] = None
                d.kind, d.action, d.text, d.reason = "reply", action.name, CANCELLED, "cancelled"
                return d
            if not confident or confident in action.intents:
                pending["strikes"] = int(pending.get("strikes", 0)) + 1
                if pending["strikes"] >= esc.loop_repeats:
                    return handoff("loop")
                d.kind, d.action, d.slots, d.text = (
                    "confirm",
                    action.name,
                    dict(pending["slots"]),
                    "Sorry, I need a yes or no: ",
                )
                return d
            state["pending"] = None  # they moved on to something else
        else:
            slot = pending["awaiting"]
            got = {k: v for k, v in extract(action, s.text, u.slots).items()}
            if (
                slot not in got
                and action.slots[slot].type == "text"
                and not action.slots[slot].pattern
                and s.text.strip()
            ):
                with contextlib.suppress(SlotInvalid):  # a free-text slot takes the whole answer
                    got[slot] = normalise(action.slots[slot], s.text)
            if slot in got:
                return _proceed(spec, action, {**known, **pending["slots"], **got}, state, d)
            if not confident or confident in action.intents:
                pending["strikes"] = int(pending.get("strikes", 0)) + 1
                if pending["strikes"] >= esc.loop_repeats:
                    return handoff("loop")
                d.kind, d.action, d.text = (
                    "ask",
                    action.name,
                    action.slots[slot].invalid.replace("{prompt}", action.slots[slot].prompt),
                )
                return d
            state["pending"] = None

    if confident is None:
        state["low_confidence"] = int(state.get("low_confidence", 0)) + 1
        if state["low_confidence"] >= esc.low_confidence_strikes:
            return handoff("low_confidence")
        d.kind, d.text = "clarify", CLARIFY
        return d
    state["low_confidence"] = 0
    actions = spec.actions_for_intent(confident)
    if not actions:
        return handoff("no_self_service")
    action = actions[0]
    asks = state["asks"]
    asks[confident] = int(asks.get(confident, 0)) + 1
    new_values = any(s.known.get(k) != v for k, v in facts.items() if k in action.slots)
    if asks[confident] >= esc.loop_repeats and not new_values:
        return handoff("loop")
    return _proceed(spec, action, dict(known), state, d)
