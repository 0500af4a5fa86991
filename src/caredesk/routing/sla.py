"""SLA policies (first response, next response, resolution) measured in business time, with warnings
before breach.

Configured per account in `accounts.settings["sla"]`: first_response_minutes, next_response_minutes,
resolution_minutes, warn_at (fraction of the target, default 0.8). Missing targets are not measured.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from caredesk.conversations.models import Conversation
from caredesk.routing.hours import BusinessHours, add_business_seconds, business_seconds

OK, WARNING, BREACHED = "ok", "warning", "breached"


@dataclass(frozen=True)
class Clock:
    kind: str  # first_response | next_response | resolution
    target_minutes: float
    elapsed_minutes: float
    due_at: dt.datetime
    state: str

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target_minutes": self.target_minutes,
            "elapsed_minutes": round(self.elapsed_minutes, 1),
            "due_at": self.due_at.isoformat() + "Z",
            "state": self.state,
        }


def clocks(conv: Conversation, policy: dict[str, Any], hours: BusinessHours, now: dt.datetime) -> list[Clock]:
    if conv.status == "resolved":
        return []
    warn_at = float(policy.get("warn_at", 0.8))
    running: list[tuple[str, dt.datetime, Any]] = []
    if conv.first_reply_at is None:
        running.append(("first_response", conv.created_at, policy.get("first_response_minutes")))
    elif conv.waiting_since is not None:
        running.append(("next_response", conv.waiting_since, policy.get("next_response_minutes")))
    running.append(("resolution", conv.created_at, policy.get("resolution_minutes")))
    out = []
    for kind, since, target in running:
        if not target:
            continue
        target_s = float(target) * 60
        elapsed = business_seconds(hours, since, now)
        state = BREACHED if elapsed >= target_s else WARNING if elapsed >= warn_at * target_s else OK
        out.append(
            Clock(kind, float(target), elapsed / 60, add_business_seconds(hours, since, target_s), state)
        )
    return out


def worst(cs: list[Clock]) -> str:
    states = {c.state for c in cs}
    return BREACHED if BREACHED in states else WARNING if WARNING in states else OK
