"""The case brief: what a person taking over must know, kept current as the conversation goes on.

Lives in `conversations.case_brief` (shown first to the receiving agent, and in the conversation JSON).
Keys: goal, intent, customer_words, facts, verified, steps, promises, mood, handoff_reason,
handoffs (added by transfers), updated_at.
"""

from __future__ import annotations

from typing import Any

from caredesk.conversations.models import Conversation
from caredesk.platform.models import utcnow

MAX_STEPS = 50


def mood_of(frustration: float, sentiment: float, sensitive: bool = False) -> str:
    if sensitive:
        return "distressed: handle with care"
    if frustration >= 0.7:
        return "frustrated"
    if frustration >= 0.4 or sentiment <= -0.4:
        return "impatient"
    if sentiment >= 0.4:
        return "happy"
    return "calm"


def update_brief(
    conv: Conversation,
    *,
    goal: str | None = None,
    intent: str | None = None,
    customer_words: str | None = None,
    facts: dict[str, Any] | None = None,
    verified: dict[str, Any] | None = None,
    step: tuple[str, str] | None = None,  # (by, what)
    promise: tuple[str, str] | None = None,  # (by, what)
    mood: str | None = None,
    handoff_reason: str | None = None,
) -> dict[str, Any]:
    b: dict[str, Any] = dict(conv.case_brief or {})
    now = utcnow().isoformat() + "Z"
    if goal and not b.get("goal"):
        b["goal"] = goal
    if intent:
        b["intent"] = intent
    if customer_words and not b.get("customer_words"):
        b["customer_words"] = customer_words[:300]
    if facts:
        b["facts"] = {**(b.get("facts") or {}), **facts}
    if verified:
        b["verified"] = {**(b.get("verified") or {}), **verified}
    if step:
        steps = list(b.get("steps") or [])
        if not steps or steps[-1].get("what") != step[1]:
            steps.append({"by": step[0], "what": step[1], "at": now})
        b["steps"] = steps[-MAX_STEPS:]
    if promise:
        b["promises"] = [*(b.get("promises") or []), {"by": promise[0], "what": promise[1], "at": now}]
    if mood:
        b["mood"] = mood
    if handoff_reason:
        b["handoff_reason"] = handoff_reason
    b["updated_at"] = now
    conv.case_brief = b
    return b
