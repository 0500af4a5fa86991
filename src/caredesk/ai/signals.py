"""Signals on every customer message: language, sentiment, frustration, escalation,
spam/scam and slots. Pure functions over a batch of texts; no database, no network.

    from caredesk.ai.signals import analyze
    analyze(["I want to talk to a human", ...]) -> [Signals, ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from caredesk.ai.escalation import decide
from caredesk.ai.language import detect_languages
from caredesk.ai.protocols import SentimentModel, SpamModel
from caredesk.ai.sentiment import LexiconSentiment, frustration_cues
from caredesk.ai.slots import Slot, extract_slots
from caredesk.ai.spam import SPAM_THRESHOLD, RuleSpamScorer


@dataclass(frozen=True, slots=True)
class Signals:
    text: str
    language: str
    sentiment: float  # -1 (very negative) .. 1 (very positive)
    frustration: float  # 0 .. 1
    escalate: bool
    escalate_reason: str | None  # safety | bereavement | fraud | financial_hardship | vulnerability |
    # legal_or_complaint | human_requested | repeated_contact | frustration
    spam: bool  # file in the spam folder (restorable), never drop
    spam_score: float
    slots: list[Slot] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # phrases behind escalation/frustration, for agents

    def as_dict(self) -> dict[str, Any]:
        """The `caredesk signals` line shape."""
        return {
            "text": self.text,
            "language": self.language,
            "sentiment": self.sentiment,
            "frustration": self.frustration,
            "escalate": self.escalate,
            "escalate_reason": self.escalate_reason,
            "spam": self.spam,
            "spam_score": self.spam_score,
            "slots": [s.as_dict() for s in self.slots],
        }


_sentiment: SentimentModel = LexiconSentiment()
_spam: SpamModel = RuleSpamScorer()


def analyze(
    texts: Sequence[str],
    sentiment: SentimentModel | None = None,
    spam: SpamModel | None = None,
    region: str = "GB",
) -> list[Signals]:
    """Signals for each text, in order. `region` is the default country for phone numbers."""
    moods = (sentiment or _sentiment).score(texts)
    spam_scores = (spam or _spam).score(texts)
    languages = detect_languages(texts)
    out = []
    for text, (mood, frustration), spam_score, language in zip(
        texts, moods, spam_scores, languages, strict=True
    ):
        esc = decide(text, frustration)
        is_spam = spam_score >= SPAM_THRESHOLD
        evidence = [esc.evidence] if esc.evidence else []
        evidence += frustration_cues(text)
        out.append(
            Signals(
                text=text,
                language=language,
                sentiment=mood,
                frustration=frustration,
                # Spam is not escalated: it goes to the spam folder, where an agent can restore it.
                escalate=esc.escalate and not is_spam,
                escalate_reason=esc.reason if esc.escalate and not is_spam else None,
                spam=is_spam,
                spam_score=spam_score,
                slots=extract_slots(text, region=region),
                evidence=evidence,
            )
        )
    return out
