"""Reply coach: is an agent's draft script-speak, and what should it make specific?

A reply reads as scripted when it is generic (stock phrases), apologises without
doing anything, could be sent to anyone (no detail of this customer's case), or
ignores what the customer said (their order number, amount, date, question).
Each finding adds to a score in [0, 1] and gives a reason an agent can act on.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from caredesk.ai.slots import extract_slots

SCRIPTED_AT = 0.5

_STOCK = [
    r"(?:we|i) apologi[sz]e for (?:any|the) inconvenience",
    r"sorry for (?:any|the) inconvenience",
    r"(?:we|i) (?:apologi[sz]e|are sorry|'re sorry) for any (?:trouble|frustration|issues?)",
    r"(?:we|i) (?:completely |fully |totally )?understand (?:your (?:frustration|concern|disappointment)|how frustrat\w*)",
    r"(?:we|i) value (?:your business|you as a customer|your feedback)",
    r"your (?:satisfaction|call|business|security|privacy|safety|experience) is (?:(?:very )?important(?: to us)?|our (?:top |number one |highest )?priority)",
    r"we take (?:this|it|data protection|your \w+|these matters) (?:very )?seriously",
    r"thank you for (?:your patience|your understanding|reaching out|contacting us|bringing this to our attention|your email|your message)",
    r"thanks for (?:your patience|reaching out|contacting us|getting in touch)",
    r"(?:we )?appreciate your (?:patience|understanding)",
    r"(?:please )?(?:rest|be) assured",
    r"(?:are|am|'re|'m) (?:currently )?looking into (?:it|this|the matter|your (?:case|query|issue|concern))",
    r"(?:please )?(?:do not|don't) hesitate to (?:contact|reach out|get in touch)",
    r"is there anything else (?:i|we) can (?:help|assist) (?:you )?with",
    r"as per (?:our|company) policy",
    r"(?:we|i) will get back to you (?:as soon as possible|shortly|soon|asap)",
    r"at this (?:time|moment in time)",
    r"(?:we|i) (?:have )?(?:passed|forwarded|escalated) (?:this|your (?:feedback|concern|issue|query)) (?:on )?to the (?:relevant|appropriate) (?:team|department)",
    r"kindly",
    r"for (?:security|quality) (?:and training )?purposes",
    r"have a (?:great|nice|wonderful) day",
    r"(?:we|i) (?:hope|trust) this (?:helps|information helps|email finds you well)",
    r"(?:we|i) strive to",
    r"unfortunately,? (?:we are|we're|i am|i'm) (?:unable|not able) to",
]
STOCK = [re.compile(rf"\b{p}\b", re.IGNORECASE) for p in _STOCK]
APOLOGY = re.compile(r"\b(?:sorry|apologi[sz]e|apologies|regret)\b", re.IGNORECASE)
# Something done or promised, by a person, ideally with a time.
ACTION = re.compile(
    r"\b(?:i(?:'ve| have)|we(?:'ve| have)|i(?:'ll| will)|we(?:'ll| will)|i(?:'m| am)|i just|i've just|i can|you'll|you will|"
    r"it will|it'll|this will|it should|they will|they'll|it's been|it has been|it was)\s+(?:now\s+|just\s+|already\s+|personally\s+)?"
    r"(?:refund\w*|issu\w*|sen[dt]\w*|resen[dt]\w*|cancel\w*|chang\w*|updat\w*|arrang\w*|book\w*|credit\w*|"
    r"reset\w*|replac\w*|ship\w*|dispatch\w*|fix\w*|add\w*|remov\w*|call\w*|email\w*|process\w*|"
    r"approv\w*|waiv\w*|reactivat\w*|unlock\w*|escalat\w*|raise\w*|rais\w*|order\w*|reorder\w*|check\w*|"
    r"chas\w*|confirm\w*|ask\w*|contact\w*|spoke|speak\w*|sort\w*|set up|put|paid|pay|transfer\w*|see|receive|get|arrive|show|appear|reach|be (?:refunded|credited|delivered|"
    r"with you|back))\b",
    re.IGNORECASE,
)
WHEN = re.compile(
    r"\b(?:today|tomorrow|tonight|by (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|end of day|"
    r"the end of|\d)|within \d+|in \d+ (?:hours?|days?|minutes?)|(?:\d+|one|two|three|five)\s*(?:-\s*\d+\s*)?(?:working |business )?"
    r"(?:days?|hours?)|this (?:afternoon|morning|evening|week)|next (?:week|monday|tuesday|wednesday|thursday|friday)|"
    r"\d{1,2}(?::\d\d)?\s?(?:am|pm))\b",
    re.IGNORECASE,
)
_STOP_WORDS = (
    "the a an i my me you your is are was were be been it this that to of in on for with and or not no have has had "
    "do does did can will would should could please thanks thank hi hello we our us am its it's i'm i've we've "
    "what when where why how who which there their they just so but if any all get got still yet about from at by "
    "as up out one also very really more some now then than too here hey dear team regards best sorry apologise "
    "apologize apologies inconvenience help happy assist customer issue problem"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z][a-z'-]{2,}")


def _content_words(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower()) if w not in _STOP}


@dataclass(frozen=True, slots=True)
class CoachReview:
    scripted: bool
    score: float
    reasons: list[str] = field(default_factory=list)
    suggestion: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def review_reply(customer: str, reply: str) -> CoachReview:
    """Review one draft `reply` to the `customer` message."""
    reasons: list[str] = []
    todo: list[str] = []
    score = 0.0
    stock = sorted(
        {m.group(0) for rx in STOCK for m in rx.finditer(reply)}, key=lambda s: reply.lower().find(s.lower())
    )
    if stock:
        score += min(0.25 * len(stock), 0.5)
        reasons.append("generic stock phrases: " + "; ".join(f'"{s}"' for s in stock[:3]))
        todo.append("replace the stock phrases with what you are doing for them")

    acted = bool(ACTION.search(reply))
    timed = bool(WHEN.search(reply))
    if APOLOGY.search(reply) and not acted:
        score += 0.3
        reasons.append("apologises without saying what you have done or will do")
    elif not acted:
        score += 0.25
        reasons.append("says no concrete action (what you did, or will do next)")
    if (
        acted
        and not timed
        and not re.search(r"\b(?:i(?:'ve| have)|we(?:'ve| have)|done|already)\b", reply, re.I)
    ):
        todo.append("say when it will happen (a day or a time)")
    if not acted:
        todo.append("state the action you take and when the customer will see it")

    # Details the customer gave that a personal reply would use.
    theirs = extract_slots(customer)
    key_slots = [s for s in theirs if s.type in {"order_number", "amount"}]
    mentioned = [s for s in key_slots if s.value.lower() in reply.lower() or s.text.lower() in reply.lower()]
    customer_words = _content_words(customer)
    shared = customer_words & _content_words(reply)
    overlap = len(shared) / max(len(customer_words), 1)
    if key_slots and not mentioned:
        score += 0.25
        what = ", ".join(dict.fromkeys(s.text for s in key_slots[:3]))
        reasons.append(f"ignores the details the customer gave ({what})")
        todo.append(f"mention {what}")
    if overlap < 0.12 and len(customer_words) >= 3:
        score += 0.25
        reasons.append("could be sent to anyone: nothing in it refers to what the customer wrote")
        seen = [w for w in _WORD.findall(customer.lower()) if w not in _STOP]
        topics = ", ".join(list(dict.fromkeys(seen))[:3])
        todo.append(f"refer to their situation ({topics})")
    if "?" in customer and overlap < 0.25 and not mentioned:
        score += 0.1
        reasons.append("does not answer the customer's question")
        todo.append("answer their question first")
    if len(_WORD.findall(reply.lower())) < 6 and not acted:
        score += 0.1
    score = round(min(score, 1.0), 3)
    scripted = score >= SCRIPTED_AT
    suggestion = ("Make it specific: " + "; ".join(dict.fromkeys(todo)) + ".") if scripted and todo else ""
    return CoachReview(scripted, score, reasons, suggestion)
