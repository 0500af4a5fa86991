"""A small keyword-based understanding for the scenario tests ONLY (the AI layer was not built yet when
these were written). It stands in for caredesk.ai behind the conductor's Understander protocol; it
deliberately does not detect requests for a person, so the tests prove the conductor's safety net."""

from __future__ import annotations

import re

from caredesk.automation.understanding import Context, Understanding

INTENTS = [
    ("address_change", r"\baddress\b|deliver (?:it )?to|\bmov(?:ed|ing)\b"),
    ("refund", r"\brefund|money back"),
    ("return", r"\breturn\b|send (?:it )?back"),
    ("password_reset", r"password|can't log ?in|cannot log ?in|reset"),
    ("order_status", r"where(?:'s| is)|status|track|arriv|my order|order th-|\bth-\d"),
    ("billing", r"charged twice|invoice|double charge"),
]
FRUSTRATED = re.compile(
    r"!!|ridiculous|unacceptable|furious|worst|useless|third time|fed up|what a joke", re.IGNORECASE
)


class KeywordUnderstanding:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, text: str, context: Context) -> Understanding:
        self.calls += 1
        low = text.lower()
        frustration = 0.9 if FRUSTRATED.search(text) else 0.0
        for intent, pattern in INTENTS:
            if re.search(pattern, low):
                return Understanding(
                    intent=intent,
                    confidence=0.9,
                    frustration=frustration,
                    sentiment=-0.6 if frustration else 0.0,
                )
        return Understanding(intent=None, confidence=0.1, frustration=frustration)
