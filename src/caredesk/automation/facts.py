"""Never ask twice: what the customer told us is kept on the conversation and the contact, and a
message that asks for something already known is flagged."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from caredesk.contacts.actions import remember_facts
from caredesk.contacts.models import Contact
from caredesk.conversations.models import Conversation

# How people ask for each fact; extend with the slot names an account declares.
ASKED_AS: dict[str, tuple[str, ...]] = {
    "order_number": ("order number", "order no", "order id", "order #", "order reference", "order ref"),
    "email": ("email", "e-mail", "mail address"),
    "address": ("address",),
    "phone": ("phone number", "mobile number", "phone no"),
    "name": ("your name", "full name"),
}
ASKING = re.compile(
    r"\?|\b(could you|can you|would you|please (?:send|provide|share|give|tell|confirm|let me "
    r"know)|what(?:'s| is) your|may i have|i need your)\b",
    re.IGNORECASE,
)


def known_facts(conv: Conversation, contact: Contact | None) -> dict[str, Any]:
    """Contact facts (all channels) overlaid with this conversation's."""
    return {**(contact.facts if contact else {}), **dict(conv.custom_attributes.get("facts") or {})}


def remember(session: Session, conv: Conversation, facts: dict[str, Any]) -> dict[str, Any]:
    """Store new facts on the conversation and the contact; returns the ones that were new."""
    clean = {k: v for k, v in facts.items() if v not in (None, "") and not k.startswith("_")}
    current = dict(conv.custom_attributes.get("facts") or {})
    new = {k: v for k, v in clean.items() if current.get(k) != v}
    if new:
        conv.custom_attributes = {**conv.custom_attributes, "facts": {**current, **new}}
        remember_facts(session, conv.account_id, conv.contact_id, new)
    return new


def reasks(text: str, known: dict[str, Any]) -> list[str]:
    """The known facts this message asks for again (empty when it asks for nothing known)."""
    if not ASKING.search(text):
        return []
    low = text.lower()
    out = []
    for key in known:
        phrases = ASKED_AS.get(key, (key.replace("_", " "),))
        if any(p in low for p in phrases):
            out.append(key)
    return sorted(out)
