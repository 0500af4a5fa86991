"""The escalation safety net: rules that never depend on a model's confidence.

A request for a person is honoured at once in any wording the AI layer recognises; these patterns
make sure the common wordings are honoured even if it misses them. Sensitive situations
(bereavement, danger, abuse) are handed to a person with care.
"""

from __future__ import annotations

import re

PERSON = re.compile(
    r"\b(human|humans|a person|real person|real people|someone real|somebody real|actual person|live "
    r"(?:agent|person|chat)|"
    r"(?:an? |your |the )?(?:agent|operator|representative|rep|manager|supervisor|staff member|colleague)|"
    r"speak (?:to|with) (?:someone|somebody|anyone|a)|talk (?:to|with) (?:someone|somebody|anyone|a)|"
    r"not (?:a |this )?(?:bot|robot|machine)|no (?:more )?(?:bot|robot)s?|stop the bot|customer "
    r"service|call me)\b",
    re.IGNORECASE,
)
SENSITIVE = re.compile(
    r"\b(passed away|has died|have died|died|death|deceased|funeral|bereave\w*|widow\w*|lost my "
    r"(?:husband|wife|mother|father|son|daughter|partner)|"
    r"suicid\w*|kill myself|self[- ]harm|abuse\w*|domestic violence|terminal(?:ly)? "
    r"ill|cancer|hospitali[sz]ed|in hospital|emergency)\b",
    re.IGNORECASE,
)
YES = re.compile(
    r"^\s*(yes|yeah|yep|yup|sure|ok|okay|please do|go ahead|do it|correct|right|confirm(?:ed)?|that's "
    r"right|y)\b",
    re.IGNORECASE,
)
NO = re.compile(r"^\s*(no|nope|nah|don't|do not|cancel|stop|wait|n)\b", re.IGNORECASE)


def wants_person(text: str) -> bool:
    return bool(PERSON.search(text))


def is_sensitive(text: str) -> bool:
    return bool(SENSITIVE.search(text))


def answer(text: str) -> bool | None:
    """A yes/no answer to a confirmation; None when it is neither."""
    if YES.search(text):
        return True
    if NO.search(text):
        return False
    return None
