"""Sentiment and frustration for support chat.

General-purpose sentiment lexicons read "this is the third time I'm asking" as
neutral and "thanks for nothing" as positive. This lexicon is written for support
conversations: repetition, waiting, being ignored, being passed around, threats to
leave, sarcastic thanks. Each cue has a weight; the sums are squashed into
sentiment in [-1, 1] and frustration in [0, 1]. Negation ("not happy", "not
resolved") flips a positive cue to a negative one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from caredesk.ai.prefilter import Gate, gate

# (pattern, weight) -- frustration cues also count as negative sentiment.
_FRUSTRATION: list[tuple[str, float]] = [
    # repetition and being ignored
    (
        r"\b(?:second|third|fourth|fifth|2nd|3rd|4th|5th|\d+th|umpteenth|nth)\s+(?:time|email|message|call|letter|chat)\b",
        1.6,
    ),
    (
        r"\b(?:contacted|called|emailed|written to|messaged|wrote to) (?:you )?(?:before|already|twice|again|last week|yesterday|about this)\b",
        1.4,
    ),
    (r"\bwhy is it so (?:hard|difficult|complicated)\b|\b(?:nothing|still nothing) (?:has )?happened\b", 1.4),
    (
        r"\b(?:formal(?:ly)? complain\w*|ombudsman|small claims|solicitor|lawyer|trading standards|legal action)\b",
        1.3,
    ),
    (r"\b(?:several|multiple|many|countless|so many|three|four|five|six|\d+)\s+times\b", 1.4),
    (r"\bhow many (?:more )?times\b", 1.8),
    (
        r"\b(?:already|previously) (?:told|explained|asked|sent|called|emailed|contacted|said|provided|gave)\b",
        1.3,
    ),
    (r"\b(?:again|yet again|once again)\b", 0.6),
    (
        r"\bstill (?:no|not|nothing|haven'?t|hasn'?t|waiting|broken|the same|doesn'?t|don'?t|can'?t|isn'?t)\b",
        1.3,
    ),
    (
        r"\b(?:no one|nobody|no-one)\b[^.!?]{0,40}\b(?:respond|repl|got back|answer|help|call|contact|care)",
        1.5,
    ),
    (r"\b(?:never|not once) (?:heard back|got a reply|received a reply|got back|replied|responded)\b", 1.4),
    (r"\b(?:ignor(?:ed|ing)|no response|no reply|no answer|radio silence)\b", 1.3),
    (r"\b(?:still )?waiting (?:for|since)\b[^.!?]{0,30}\b(?:days|weeks|months|hours|ages|forever)\b", 1.2),
    (r"\b(?:days|weeks|months) (?:now|later|and still|and no|without)\b", 1.0),
    (r"\b(?:on hold|in a queue|in the queue) for\b", 1.2),
    (
        r"\b(?:runaround|run around|passed around|passed from|going (?:round|around) in circles|bounced around)\b",
        1.5,
    ),
    (r"\b(?:same|generic|copy[- ]?paste[d]?|scripted|canned) (?:answer|reply|response|message)s?\b", 1.4),
    (r"\bkeep (?:getting|being|asking|telling|saying|sending|having to)\b", 1.4),
    (r"\bevery (?:single )?time\b", 1.0),
    # anger and exasperation
    (
        r"\b(?:ridiculous|unacceptable|outrageous|absurd|disgraceful|shocking|appalling|pathetic|joke|laughable)\b",
        1.5,
    ),
    (r"\b(?:useless|incompetent|hopeless|clueless|worthless)\b", 1.5),
    (
        r"\b(?:furious|livid|fuming|angry|annoyed|annoying|irritated|infuriat\w*|frustrat\w*|exasperat\w*|fed up|sick of|"
        r"tired of|had enough|done with|lost my patience|losing my patience|at my wits'? end)\b",
        1.6,
    ),
    (r"\b(?:worst|terrible|awful|horrible|horrendous|dreadful|abysmal|atrocious|disgusted|appalled)\b", 1.2),
    (r"\b(?:waste|wasting|wasted) (?:of )?(?:my )?(?:time|money|\w+ hours?)\b", 1.4),
    (
        r"\b(?:what is going on|what's going on|what the hell|wtf|seriously\?|are you kidding|are you serious|"
        r"you(?:'re| are) kidding)\b",
        1.3,
    ),
    (r"\b(?:thanks|thank you) for nothing\b", 2.0),
    (
        r"\b(?:cancel(?:ling)? my (?:account|subscription|membership|order)|switch(?:ing)? to|take my business "
        r"elsewhere|never (?:again|use you|order|buy)|going to leave|close my account)\b",
        0.9,
    ),
    (r"\b(?:i want|give me|demand) (?:my money back|a refund)\b", 0.7),
    (r"\b(?:rip[- ]?off|scam(?:mers)?|cowboys|daylight robbery)\b", 1.0),
    (r"\bsupposed to (?:be|have|arrive|get)\b", 0.6),
    (r"\b(?:promised|told me) (?:it would|that it|me it|i would)\b", 0.9),
]
_NEGATIVE: list[tuple[str, float]] = [
    (
        r"\b(?:problem|issue|broken|faulty|defective|damaged|wrong|missing|late|delayed|lost|error|failed|fail|"
        r"failing|crash\w*|bug|stuck|declined|overcharged|charged twice|double charged|not working|doesn'?t work|"
        r"stopped working|won'?t (?:work|load|open|let)|can'?t (?:log|access|find|get|use|login)|unable to)\b",
        0.6,
    ),
    (
        r"\b(?:disappointed|disappointing|unhappy|upset|worried|concerned|confused|annoying|sad|stressed|"
        r"stressful|anxious|poor|bad|rude|unhelpful|slow|not happy|not good|not ok)\b",
        0.9,
    ),
    (r"\b(?:complain\w*|refund|cancel\w*|dispute)\b", 0.4),
]
_POSITIVE: list[tuple[str, float]] = [
    (r"\b(?:thanks|thank you|thx|ty|cheers|appreciate\w*|grateful)\b", 0.9),
    (
        r"\b(?:great|perfect|awesome|excellent|brilliant|amazing|fantastic|wonderful|lovely|superb|"
        r"outstanding|love|loved|happy|glad|pleased|delighted|helpful|quick|fast|easy|smooth|good|nice|"
        r"sorted|resolved|fixed|works now|working now|all good|no worries|solved)\b",
        0.9,
    ),
]
_NEGATOR = re.compile(
    r"\b(?:not|never|no|isn'?t|wasn'?t|aren'?t|hardly|don'?t|doesn'?t|didn'?t|nothing)\s+(?:\w+\s+)?$"
)
_SARCASM = re.compile(
    r"\b(?:oh )?(?:great|perfect|brilliant|wonderful|fantastic|lovely)[,.!]+\s+(?:another|again|"
    r"so now|now i|just what)\b|\byeah right\b|\bwhat a (?:joke|surprise)\b",
    re.IGNORECASE,
)


def _compile(rules: list[tuple[str, float]]) -> list[tuple[re.Pattern[str], float]]:
    return [(re.compile(p, re.IGNORECASE), w) for p, w in rules]


FRUSTRATION = _compile(_FRUSTRATION)
NEGATIVE = _compile(_NEGATIVE)
POSITIVE = _compile(_POSITIVE)


def _gate(rules: list[tuple[re.Pattern[str], float]]) -> Gate[tuple[re.Pattern[str], float]]:
    """The rules, of which `select(text)` keeps (in order) those whose words the text holds."""
    return Gate(rules, [rx for rx, _w in rules])


_FRUSTRATION_GATE = _gate(FRUSTRATION)
_NEGATIVE_GATE = _gate(NEGATIVE)
_POSITIVE_GATE = _gate(POSITIVE)
_SARCASM_GATE = gate([_SARCASM])
_CAPS_WORD = re.compile(r"\b[A-Za-z]{3,}\b")
_CAPS3 = re.compile(r"[A-Z]{3}")  # an all-capitals word of 3+ letters holds 3 capitals in a row
_PUNCT_RUN = re.compile(r"[!?]{2,}")


def _shouting(text: str) -> float:
    """Capitals and repeated punctuation: weight for 'typed in anger'."""
    score = 0.0
    if _CAPS3.search(text):  # otherwise no word is in capitals: caps == 0
        words = _CAPS_WORD.findall(text)
        caps = sum(w.isupper() for w in words)
        if caps >= 2 and caps / max(len(words), 1) > 0.3:
            score += 1.2
        elif caps >= 2:
            score += 0.5
    if _PUNCT_RUN.search(text):
        score += 0.8
    elif text.count("!") >= 1:
        score += 0.2
    return score


def _cues(text: str) -> list[tuple[str, float]]:
    """Each frustration phrase found with its weight, in rule order."""
    return [(m.group(0), w) for rx, w in _FRUSTRATION_GATE.select(text) for m in rx.finditer(text)]


def frustration_cues(text: str) -> list[str]:
    """The frustration phrases found, for explaining a score to an agent."""
    return [phrase for phrase, _w in _cues(text)]


class LexiconSentiment:
    """The embedded default `SentimentModel`: a support-chat lexicon."""

    def score_one(self, text: str) -> tuple[float, float]:
        return self._score(text, _cues(text))

    def _score(self, text: str, cues: list[tuple[str, float]]) -> tuple[float, float]:
        frustration = sum(w for _phrase, w in cues)
        frustration += _shouting(text)
        sarcasm = _SARCASM_GATE.may_match(text) and _SARCASM.search(text) is not None
        if sarcasm:
            frustration += 1.2
        negative = frustration + sum(w for rx, w in _NEGATIVE_GATE.select(text) for _ in rx.finditer(text))
        positive = 0.0
        for rx, w in _POSITIVE_GATE.select(text):
            for m in rx.finditer(text):
                before = text[max(0, m.start() - 25) : m.start()]
                if _NEGATOR.search(before.lower()):
                    negative += w  # "not happy", "never resolved"
                else:
                    positive += w
        if sarcasm:
            positive = max(0.0, positive - 1.0)
        sentiment = math.tanh((positive - negative) / 2.0)
        # Squash: one strong cue (1.5) ~0.6, two ~0.85, three or more ~0.95.
        frust = 1.0 - math.exp(-frustration / 1.6)
        return round(sentiment, 3), round(frust, 3)

    def score(self, texts: Sequence[str]) -> list[tuple[float, float]]:
        return [self.score_one(t) for t in texts]

    def score_one_with_cues(self, text: str) -> tuple[float, float, list[str]]:
        """(sentiment, frustration, frustration phrases): `score_one` and `frustration_cues` in one
        pass over the frustration rules."""
        cues = _cues(text)
        mood, frust = self._score(text, cues)
        return mood, frust, [phrase for phrase, _w in cues]
