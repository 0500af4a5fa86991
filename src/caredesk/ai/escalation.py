"""Should a person take this over, and why.

Reasons are checked in order of harm: a message about danger to health or safety
outranks a request for a human. Patterns are phrase-level and written for support
messages; each reason is a stable string the UI and routing can key on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from caredesk.ai.prefilter import Gate, gate

FRUSTRATION_ESCALATES = 0.75  # about two strong cues; one annoyed line is for the bot to fix

# Order matters: first match is the reason reported.
_REASONS: list[tuple[str, str]] = [
    (
        "safety",
        r"\b(?:suicid\w*|kill (?:myself|me)|end(?:ing)? (?:my life|it all)|self[- ]harm|hurt myself|overdos\w*|chest pains?|"
        r"can'?t breathe|cannot breathe|struggling to breathe|gas leak\w*|smell(?:s|ing)? (?:of )?gas|carbon monoxide|"
        r"(?:caught|catching|on) fire|smok(?:e|ing) (?:is )?coming|sparks?|sparking|exploded|explod\w+|electric shock|"
        r"electrocut\w*|burn(?:ed|t)? (?:my|his|her|their|our)|choking|allergic reaction|anaphyla\w*|bleeding|injur\w*|"
        r"hospitali[sz]ed|unsafe|dangerous|danger|threaten\w* (?:me|to)|abus(?:e|ive) (?:partner|relationship)|"
        r"domestic (?:abuse|violence)|(?:fear|afraid) for my (?:life|safety)|no heating|no heat|without heating|"
        r"no (?:running )?water|power cut|medical (?:device|equipment)|oxygen)\b",
    ),
    (
        "bereavement",
        r"\b(?:passed away|has died|had died|died|death|deceased|funeral|bereave\w*|probate|executor|"
        r"late (?:husband|wife|mother|father|mum|mom|dad|son|daughter|partner|brother|sister)|"
        r"lost my (?:husband|wife|mother|father|mum|mom|dad|son|daughter|partner|brother|sister|grandmother|"
        r"grandfather|baby)|death certificate|estate of|(?:father|mother|dad|mum|mom|husband|wife|partner|son|daughter)'s estate)\b",
    ),
    (
        "fraud",
        r"\b(?:fraud\w*|scam(?:med)?|stolen|hacked|hacker|unauthori[sz]ed|identity theft|phish\w*|compromised|"
        r"(?:didn'?t|did not|never) (?:make|made|authori[sz]ed?|order(?:ed)?|buy|bought|purchased?|placed?)\b[^.!?]{0,30}"
        r"(?:payment|purchase|transaction|charge|order|this)|"
        r"(?:don'?t|do not|doesn'?t|didn'?t) recogni[sz]e\b[^.!?]{0,30}(?:charge|payment|transaction|debit|purchase)|"
        r"(?:charge|payment|transaction|debit)[^.!?]{0,40}(?:don'?t|do not|can'?t|cannot) recogni[sz]e|unrecogni[sz]ed (?:charge|payment|transaction|debit)|unknown (?:charge|payment|transaction|debit)|"
        r"someone (?:else )?(?:has )?(?:used|accessed|got into|logged into|took|is using)|"
        r"suspicious (?:activity|transaction|charge|payment|login|email|text)|not me who|wasn'?t me|"
        r"is (?:this|it|that) (?:legit|legitimate|genuine|real|a scam|from you)|claiming to be (?:from )?(?:you|your))\b",
    ),
    (
        "financial_hardship",
        r"\b(?:can'?t afford|cannot afford|could not afford|couldn'?t afford|lost my job|unemployed|made redundant|"
        r"redundancy|laid off|struggling (?:to pay|financially|with (?:money|bills|payments))|"
        r"financial(?:ly)? (?:difficult\w*|hardship|trouble|struggl\w*)|behind (?:on|with) (?:my )?(?:payments|rent|bills|"
        r"mortgage)|in arrears|arrears|bailiffs?|debt collectors?|evict\w*|food bank|can'?t pay|cannot pay|"
        r"unable to pay|no money|payment (?:plan|holiday|break)|(?:on|living on) benefits|universal credit|bankrupt\w*)\b",
    ),
    (
        "vulnerability",
        r"\b(?:disabled|disability|wheelchair|carer|caregiver|elderly|pensioner|dementia|alzheimer'?s?|blind|"
        r"partially sighted|deaf|hard of hearing|mental health|depress\w*|anxiety|panic attacks?|cancer|chemo\w*|"
        r"terminal(?:ly)? ill|in hospital|hospice|pregnant|autis\w*|learning (?:difficult|disabilit)\w*|"
        r"vulnerable|(?:my )?english (?:is not|isn'?t) (?:good|great|my first)|don'?t understand (?:english|this)|"
        r"(?:i am|i'm) (?:\d{2}|eighty|ninety|seventy)\w* years old|live alone)\b",
    ),
    (
        "legal_or_complaint",
        r"\b(?:lawyer|solicitor|attorney|legal action|legal advice|take (?:legal|you to court)|sue|suing|court|"
        r"small claims|ombudsman|trading standards|regulator|fca|ofcom|ofgem|financial conduct|cfpb|bbb|"
        r"better business bureau|consumer (?:rights|protection)|formal(?:ly)? complain\w*|official complaint|"
        r"raise a complaint|make a complaint|lodge a complaint|file a complaint|complaints (?:department|procedure|"
        r"process)|data protection|gdpr|subject access request|chargeback|report you)\b",
    ),
    (
        "human_requested",
        r"\b(?:(?:speak|talk|chat|speaking|talking) (?:to|with) (?:a |an |some |your |the )?(?:real |actual |live )?"
        r"(?:human|person|people|agent|someone|somebody|representative|rep|manager|supervisor|operator|advisor|"
        r"adviser|staff|member of staff|team member|customer service)|"
        r"(?:real|actual|live) (?:human|person|agent|people)|human (?:being|agent|please|support)|"
        r"(?:agent|human|person|representative|operator|manager|supervisor) please|"
        r"(?:transfer|connect|put) me (?:to|through)|escalat\w+|"
        r"(?:is|are) (?:there|you) (?:a |an )?(?:human|bot|robot|machine|real)|(?:are you|is this) (?:a )?(?:bot|robot|"
        r"machine|automated|ai)\b|stop (?:the )?bot|not (?:a |another )?(?:bot|robot|machine)|"
        r"(?:need|want|get) (?:a |an )?(?:human|person|agent|representative|manager|supervisor|someone to call)|"
        r"(?:call|ring|phone) me(?: back)?|callback|anyone there|someone who can actually help)\b"
        r"|^\W*(?:agent|human|representative|operator|person|real person|advisor|adviser)\W*$",
    ),
    (
        "repeated_contact",
        r"\b(?:(?:second|third|fourth|fifth|2nd|3rd|4th|5th|\d+th|umpteenth|nth) (?:time|email|message|call|letter|chat)|"
        r"(?:several|multiple|many|countless|three|four|five|\d+) times|how many times|"
        r"(?:already|previously) (?:called|emailed|contacted|written|messaged|chatted|raised|reported|told|explained)|"
        r"(?:contacted|called|emailed|written to|messaged) (?:you )?(?:before|already|twice|again|last week|yesterday)|"
        r"keep (?:having to )?(?:contact|call|email|writ|messag|chas)\w*|chas(?:ed|ing) (?:this|you|up)|"
        r"still (?:no|not|haven'?t|hasn'?t|waiting)|again and again|every time i (?:call|write|contact|ask))\b",
    ),
]
REASONS = [(name, re.compile(rx, re.IGNORECASE)) for name, rx in _REASONS]
REASON_NAMES = [name for name, _ in REASONS] + ["frustration"]

# Phrases that look like a reason but are not one ("my phone died", "the food court").
_EXCLUDE = {
    "bereavement": re.compile(
        r"\b(?:phone|battery|laptop|screen|device|car|app|it|charger|tablet|computer|line|router|modem|console|"
        r"engine|headphones|kindle|watch|tv|printer)\s+(?:has\s+|had\s+|just\s+|completely\s+)?died\b",
        re.IGNORECASE,
    ),
    "legal_or_complaint": re.compile(r"\bfood court\b|\bcourt (?:shoes?|size)\b", re.IGNORECASE),
}

# A request for a person phrased as a negative is not a request ("no need to call me").
_NOT_NEEDED = re.compile(
    r"\b(?:no need to|don'?t|do not|needn'?t) (?:call|ring|phone|transfer|escalate|put me through)\b",
    re.IGNORECASE,
)


# Reasons whose words the text holds (see caredesk.ai.prefilter); the others cannot match.
_REASON_GATE: Gate[tuple[str, re.Pattern[str]]] = Gate(REASONS, [rx for _name, rx in REASONS])
_EXCLUDE_GATES = {name: gate([rx]) for name, rx in _EXCLUDE.items()}


@dataclass(frozen=True, slots=True)
class Escalation:
    escalate: bool
    reason: str | None
    evidence: str | None  # the phrase that triggered it


def decide(text: str, frustration: float) -> Escalation:
    may = _REASON_GATE.select(text)
    for entry in REASONS:
        name, rx = entry
        exclude = _EXCLUDE.get(name)
        if exclude is not None and _EXCLUDE_GATES[name].may_match(text) and exclude.search(text):
            # Phrases taken out: the rest is a new text, searched without the gate.
            m = rx.search(exclude.sub(" ", text))
        elif entry in may:
            m = rx.search(text)
        else:
            continue  # none of the reason's words in the text: it cannot match
        if m is None:
            continue
        if name == "human_requested" and _NOT_NEEDED.search(text) and len(rx.findall(text)) == 1:
            continue
        return Escalation(True, name, m.group(0))
    if frustration >= FRUSTRATION_ESCALATES:
        return Escalation(True, "frustration", None)
    return Escalation(False, None, None)
