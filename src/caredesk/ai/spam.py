"""Spam and scam scoring. A high score files a message in the spam folder (an agent
can restore it); it never deletes or drops a message.

Two scorers behind `SpamModel`:
- `RuleSpamScorer`, the embedded default: hand-written cues of unsolicited offers,
  advance-fee and prize scams, phishing links and premium-rate texts. It needs no
  training data. A customer *reporting* a scam ("I got a text saying I won...") is
  a customer, not spam: first-person reporting damps the score, and the escalation
  check flags it as possible fraud instead.
- `SpamClassifier`, trained on an account's own spam/ham examples (TF-IDF n-grams
  + MiniLM vectors, like the intent model), with the rule score mixed in.
"""

from __future__ import annotations

import logging
import math
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from caredesk.ai.prefilter import Gate, gate

SPAM_THRESHOLD = 0.5
SPAM_FILE = "spam.pkl"  # an account's trained model, beside its intent model

_RULES: list[tuple[str, float]] = [
    # prizes, lotteries, advance fees
    (r"\b(?:you(?:'ve| have)? (?:won|been (?:selected|chosen))|winner|congratulations|congrats)\b", 1.6),
    (r"\b(?:prize|award(?:ed)?|lottery|jackpot|sweepstake|cash prize|claim (?:your|now|it)|to claim)\b", 1.4),
    (
        r"\b(?:guaranteed|risk[- ]free|100% free|absolutely free|no cost|free (?:entry|gift|msg|ringtone|tones|"
        r"camera|phone|vouchers?|holiday|trial|membership|text|sms))\b",
        1.2,
    ),
    (
        r"\b(?:inheritance|beneficiary|next of kin|barrister|diplomat|consignment|unclaimed (?:funds|sum)|"
        r"million (?:dollars|usd|pounds)|wire transfer|western union|moneygram|processing fee|release (?:of )?(?:the )?"
        r"funds)\b",
        1.8,
    ),
    (
        r"\b(?:bitcoin|crypto|forex) (?:investment|opportunity|trading|profits?)\b|\bdouble your (?:money|investment)\b"
        r"|\b(?:earn|make) \$?\d+[\d,]* (?:a|per) (?:day|week)\b|\bwork from home\b",
        1.6,
    ),
    # phishing
    (
        r"\b(?:verify|confirm|update|validate|unlock|reactivate) (?:your )?(?:account|identity|details|password|"
        r"payment (?:details|information)|card)\b",
        1.0,
    ),
    (
        r"\b(?:account (?:has been |will be )?(?:suspended|locked|limited|disabled|closed)|unusual sign-?in|"
        r"final (?:notice|warning|reminder)|action required|immediate action)\b",
        1.0,
    ),
    (
        r"https?://\S*(?:bit\.ly|tinyurl|goo\.gl|t\.co|ow\.ly|is\.gd|\d+\.\d+\.\d+\.\d+|\.(?:xyz|top|click|loan|"
        r"work|gq|tk|ml|cf|ru|cn)\b)",
        1.8,
    ),
    (
        r"\bclick (?:here|the link|below|now)\b|\b(?:limited time|act now|expires? (?:today|soon|in)|"
        r"only \d+ (?:left|remaining)|don'?t miss)\b",
        1.2,
    ),
    # SMS-marketing shapes: short codes, premium numbers, opt-outs
    (r"\b(?:txt|text|send|reply)\s+[A-Z]{2,}\s+(?:to|2)\s+\d{4,6}\b", 2.0),
    (r"\b0(?:8|9)\d{8,9}\b|\b\d{5}\b(?=.*\b(?:txt|text|reply|call|send)\b)", 1.0),
    (
        r"\b(?:\d+p|£\d+(?:\.\d\d)?)\s*/\s*(?:msg|min|minute|wk|week)\b|\bstd (?:txt|text) rate\b|\bT&C'?s?\b|"
        r"\b(?:18|16)\+|\bover ?18'?s\b",
        1.6,
    ),
    (r"\b(?:unsubscribe|opt[- ]?out|reply stop|text stop|send stop|stop to end|to stop)\b", 1.2),
    (
        r"\b(?:ringtones?|polyphonic|mobile (?:number|no) (?:has )?won|bonus (?:caller|prize)|call now|call free|"
        r"freephone|freefone|urgent!|valid \d+ ?(?:hrs|hours))\b",
        1.3,
    ),
    # unsolicited services
    (
        r"\b(?:seo|search engine optimi[sz]ation|rank (?:your|on) (?:website|google)|web (?:design|development) "
        r"services|increase (?:your )?(?:traffic|sales|leads)|lead generation|marketing services|backlinks|"
        r"guest post(?:ing)?|we can help (?:your business|you grow))\b",
        1.4,
    ),
    (
        r"\b(?:hot singles|dating|sexy|xxx|viagra|cialis|casino|betting tips|loan approved|pre-?approved|"
        r"payday loan|debt relief)\b",
        1.5,
    ),
]
RULES = [(re.compile(rx, re.IGNORECASE), w) for rx, w in _RULES]
# `select(text)` keeps, in order, the rules whose words the text holds (see caredesk.ai.prefilter).
_RULES_GATE = Gate(RULES, [rx for rx, _w in RULES])
_MONEY = re.compile(r"[£$€]\s?\d[\d,]*")

# A customer telling us about a scam, or asking if a message is genuine.
_REPORTING = re.compile(
    r"\b(?:i (?:got|received|have received|just got)|someone (?:sent|texted|emailed|called)|is this (?:legit|real|"
    r"genuine|a scam|from you)|was this (?:from you|legit|real)|did you send|claiming to be (?:from )?you|"
    r"pretending to be|i think (?:it'?s|this is) a scam|report (?:a|this) (?:scam|phishing))\b",
    re.IGNORECASE,
)
_REPORTING_GATE = gate([_REPORTING])


log = logging.getLogger(__name__)


class RuleSpamScorer:
    """The embedded default `SpamModel`: no training data needed."""

    def score_one(self, text: str) -> float:
        # A cue found twice (two advance-fee phrases, two prize words) counts twice, no more.
        # Rules that cannot match add 0.0 and are skipped; the additions that remain are the same.
        total = sum((w * min(len(rx.findall(text)), 2) for rx, w in _RULES_GATE.select(text)), 0.0)
        if total > 0:
            total += 0.5 * min(len(_MONEY.findall(text)), 2)
            letters = [c for c in text if c.isalpha()]
            if len(letters) > 20 and sum(c.isupper() for c in letters) / len(letters) > 0.5:
                total += 0.8
            if _REPORTING_GATE.may_match(text) and _REPORTING.search(text):
                total *= 0.25
        # Calibrated so one weak cue stays well below 0.5 and two strong cues pass it.
        return round(1.0 / (1.0 + math.exp(-(total - 2.6) * 1.6)), 4)

    def score(self, texts: Sequence[str]) -> list[float]:
        return [self.score_one(t) for t in texts]


class SpamClassifier:
    """A spam model trained on labelled {text, label in spam|ham} examples."""

    def __init__(self, parts: dict[str, Any], threshold: float = SPAM_THRESHOLD) -> None:
        self.parts = parts
        self.threshold = threshold
        self.rules = RuleSpamScorer()

    @classmethod
    def train(
        cls, texts: Sequence[str], is_spam: Sequence[bool], vectors: np.ndarray | None = None
    ) -> SpamClassifier:
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        # Case is kept: "URGENT! You have WON" shouts in a way ham rarely does.
        chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 5), sublinear_tf=True, min_df=2, lowercase=False
        )
        words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b|[£$€!]")  # noqa: S106
        y = np.asarray(is_spam, dtype=int)
        grams = hstack([chars.fit_transform(texts), words.fit_transform(texts)]).tocsr()
        ngram = LogisticRegression(C=50.0, max_iter=2000, class_weight="balanced").fit(grams, y)
        parts: dict[str, Any] = {"chars": chars, "words": words, "ngram": ngram}
        if vectors is not None:
            from caredesk.ai.embedder import vectors_version

            parts["emb"] = LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced").fit(vectors, y)
            parts["vectors"] = vectors_version()  # which vectors `emb` was fitted on (see `load`)
        return cls(parts)

    def score(
        self, texts: Sequence[str], vectors: np.ndarray | None = None, rules: Sequence[float] | None = None
    ) -> list[float]:
        """Spam probability per text. `rules`: `RuleSpamScorer().score(texts)` if already worked out
        (`caredesk.ai.signals.analyze` does, while the texts are being embedded)."""
        from scipy.sparse import hstack

        grams = hstack([self.parts["chars"].transform(texts), self.parts["words"].transform(texts)]).tocsr()
        logit = self.parts["ngram"].decision_function(grams)
        if "emb" in self.parts and vectors is not None:
            logit = 0.6 * logit + 0.4 * self.parts["emb"].decision_function(vectors)
        rule = np.array(self.rules.score(texts) if rules is None else rules)
        # The rule score nudges, it does not decide: +-1 logit at its extremes.
        logit = logit + 2.0 * (rule - 0.5)
        return [round(float(p), 4) for p in 1.0 / (1.0 + np.exp(-logit))]

    def save(self, path: str | Path) -> None:
        with Path(path).open("wb") as fh:
            pickle.dump({"parts": self.parts, "threshold": self.threshold}, fh)

    @classmethod
    def load(cls, path: str | Path) -> SpamClassifier:
        with Path(path).open("rb") as fh:
            data = pickle.load(fh)  # noqa: S301 - only files written by `save`
        parts = data["parts"]
        if "emb" in parts:
            from caredesk.ai.embedder import VECTORS, vectors_version

            trained = parts.get("vectors", VECTORS["fp32"])  # saved before int8 existed: fp32
            if trained != vectors_version():
                log.warning(
                    "spam model %s was trained on %s vectors but this process makes %s vectors; it still "
                    "works (its n-gram part weighs most), but retrain it or set CAREDESK_AI_PRECISION to match",
                    path,
                    trained,
                    vectors_version(),
                )
        return cls(parts, data["threshold"])


_loaded: dict[tuple[str, float], SpamClassifier] = {}


def load_spam_model(path: str | Path) -> SpamClassifier:
    """Load (once per file version) a model saved by `SpamClassifier.save`."""
    file = Path(path).resolve()
    key = (str(file), file.stat().st_mtime)
    if key not in _loaded:
        _loaded[key] = SpamClassifier.load(file)
    return _loaded[key]
