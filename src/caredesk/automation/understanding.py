"""What the conductor needs to know about a customer's message, behind a small protocol.

The AI layer (caredesk.ai) provides the real thing; `from_ai` adapts whatever it exposes. Until it
exists, or when it returns nothing, the conductor still works from slot patterns, confirmations and
the escalation safety net (caredesk.automation.escalation).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Understanding:
    intent: str | None = None
    confidence: float = 0.0
    escalate: bool = False
    escalate_reason: str = ""  # human_request | frustration | sensitive | ...
    frustration: float = 0.0  # 0 calm .. 1 furious
    sentiment: float = 0.0  # -1 .. 1
    slots: dict[str, Any] = field(default_factory=dict)
    language: str | None = None
    question: bool = False  # a question for the knowledge base rather than a transaction
    spam: bool = False


@dataclass(frozen=True)
class Context:
    account_id: int
    conversation_id: int
    history: list[str]  # the customer's earlier messages in this conversation, oldest first
    known: dict[str, Any]  # facts already known


class Understander(Protocol):
    async def __call__(self, text: str, context: Context) -> Understanding: ...


def from_signals(signals: dict[str, Any]) -> Understanding | None:
    """The AI pipeline step stores its analysis in message.signals; read it without depending on its
    module."""
    if not signals or not any(k in signals for k in ("intent", "escalate", "escalation", "frustration")):
        return None
    intent = signals.get("intent")
    if isinstance(intent, dict):
        conf = float(intent.get("confidence", 0.0) or 0.0)
        intent = intent.get("name") or intent.get("label")
    else:
        conf = float(signals.get("intent_confidence", signals.get("confidence", 0.0)) or 0.0)
    esc = signals.get("escalation") if isinstance(signals.get("escalation"), dict) else {}
    escalate = bool(signals.get("escalate", esc.get("escalate", False) if esc else False))
    reason = str(
        signals.get("escalate_reason")
        or signals.get("escalation_reason")
        or (esc.get("reason", "") if esc else "")
    )
    frustration = signals.get("frustration", 0.0)
    if isinstance(frustration, dict):
        frustration = frustration.get("score", 0.0)
    sentiment = signals.get("sentiment", 0.0)
    if isinstance(sentiment, dict):
        sentiment = sentiment.get("score", 0.0)
    return Understanding(
        intent=str(intent) if intent else None,
        confidence=conf,
        escalate=escalate,
        escalate_reason=reason,
        frustration=float(frustration or 0.0),
        sentiment=float(sentiment or 0.0),
        slots=dict(signals.get("slots") or {}),
        language=signals.get("language"),
        question=bool(signals.get("question", False)),
        spam=bool(signals.get("spam", False)),
    )


def _coerce(raw: Any) -> Understanding:
    if isinstance(raw, Understanding):
        return raw
    data = (
        raw
        if isinstance(raw, dict)
        else {k: getattr(raw, k) for k in dir(raw) if not k.startswith("_") and not callable(getattr(raw, k))}
    )
    return from_signals(data) or Understanding()


class AIUnderstander:
    """Adapter to caredesk.ai: calls `caredesk.ai.signals.analyze(text, ...)` (and an intent model if
    separate)."""

    def __init__(self, analyze: Any) -> None:
        self.analyze = analyze

    async def __call__(self, text: str, context: Context) -> Understanding:
        params = inspect.signature(self.analyze).parameters
        kwargs: dict[str, Any] = {}
        if "history" in params:
            kwargs["history"] = context.history
        if "account_id" in params:
            kwargs["account_id"] = context.account_id
        raw = self.analyze(text, **kwargs)
        if inspect.isawaitable(raw):
            raw = await raw
        return _coerce(raw)


class NoUnderstanding:
    async def __call__(self, text: str, context: Context) -> Understanding:
        return Understanding()


def default_understander(services: Any) -> Understander:
    """The services' configured understander (tests set one), else the AI layer's, else none."""
    configured = services.extras.get("understander") if services is not None else None
    if configured is not None:
        return configured  # type: ignore[no-any-return]
    try:
        mod = importlib.import_module("caredesk.ai.signals")
        analyze = getattr(mod, "analyze", None)
        if analyze is not None:
            return AIUnderstander(analyze)
    except ImportError:
        pass
    return NoUnderstanding()
