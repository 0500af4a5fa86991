"""Signals on every customer message: language, sentiment, frustration, escalation,
spam/scam and slots. Pure functions over a batch of texts; no database, no network.

    from caredesk.ai.signals import analyze
    analyze(["I want to talk to a human", ...]) -> [Signals, ...]
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from caredesk.ai.escalation import Escalation, decide
from caredesk.ai.language import detect_languages
from caredesk.ai.protocols import SentimentModel, SpamModel
from caredesk.ai.sentiment import LexiconSentiment, frustration_cues
from caredesk.ai.slots import Slot, extract_slots
from caredesk.ai.spam import SPAM_FILE, SPAM_THRESHOLD, RuleSpamScorer, load_spam_model


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
    slots: dict[str, str] = field(default_factory=dict)  # type -> first value found; "currency" with "amount"
    spans: list[Slot] = field(default_factory=list)  # every slot found, with positions
    evidence: list[str] = field(default_factory=list)  # phrases behind escalation/frustration, for agents
    question: bool = False  # asks something (a knowledge-base candidate)
    intent: str | None = None  # only when the account has a trained intent model
    intent_confidence: float = 0.0
    out_of_scope: bool = False

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
            "slots": self.slots,
        }

    def as_record(self) -> dict[str, Any]:
        """Everything, JSON-ready, for storing on a message (`message.signals`)."""
        return {
            **self.as_dict(),
            "spans": [s.as_dict() for s in self.spans],
            "evidence": self.evidence,
            "question": self.question,
            "intent": {"name": self.intent, "confidence": self.intent_confidence} if self.intent else None,
            "out_of_scope": self.out_of_scope,
        }


_QUESTION = re.compile(
    r"\?\s*$|^\s*(?:how|what|when|where|why|who|which|can|could|do|does|did|is|are|will|would|should|may)\b",
    re.IGNORECASE | re.MULTILINE,
)


def _slot_map(spans: list[Slot]) -> dict[str, str]:
    out: dict[str, str] = {}
    for s in spans:
        if s.type not in out:
            out[s.type] = s.value
            if s.currency and s.type == "amount":
                out["currency"] = s.currency
    return out


def models_root(data_dir: Path | None = None) -> Path:
    """Where per-account models live: $CAREDESK_AI_MODELS, else `<data_dir>/models` of this install
    (an account id alone is not unique across installs, so never a per-user folder)."""
    env = os.environ.get("CAREDESK_AI_MODELS")
    if env:
        return Path(env)
    if data_dir is None:
        from caredesk.settings import get_settings

        data_dir = get_settings().data_dir
    return Path(data_dir) / "models"


def _intent_folder(account_id: int | str, root: Path | None = None) -> Path:
    return (root or models_root()) / str(account_id) / "intent"


_sentiment: SentimentModel = LexiconSentiment()
_spam: SpamModel = RuleSpamScorer()
_lexicon = LexiconSentiment()
_rules = RuleSpamScorer()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _background() -> ThreadPoolExecutor:
    """Threads that embed a batch while the caller works out the signals that need no vectors."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(4, thread_name_prefix="caredesk-signals")
        return _pool


@dataclass(frozen=True, slots=True)
class _TextSignals:
    """What a text gives without any account model."""

    language: str
    sentiment: float
    frustration: float
    spam_score: float
    escalation: Escalation
    cues: list[str]
    spans: list[Slot]
    question: bool


def _text_signals(
    texts: list[str], sentiment: SentimentModel | None, spam: SpamModel | None, region: str, need_spam: bool
) -> list[_TextSignals]:
    """Everything but intent and a trained spam model, one text after the other: the rules look at
    a text while its literal scan is fresh in `caredesk.ai.prefilter`'s small cache. Without
    `need_spam` (an account's trained spam model replaces the rules) the spam score is 0.0."""
    today = dt.date.today()  # once per call, not per text
    languages = detect_languages(texts)
    lexicon = sentiment is None or type(sentiment) is LexiconSentiment
    moods = None if lexicon else (sentiment or _sentiment).score(texts)
    rules = need_spam and (spam is None or type(spam) is RuleSpamScorer)
    spam_scores = (spam or _spam).score(texts) if need_spam and not rules else None
    out = []
    for i, text in enumerate(texts):
        if moods is None:
            mood, frustration, cues = _lexicon.score_one_with_cues(text)
        else:
            mood, frustration = moods[i]
            cues = frustration_cues(text)
        spam_score = _rules.score_one(text) if rules else spam_scores[i] if spam_scores is not None else 0.0
        out.append(
            _TextSignals(
                language=languages[i],
                sentiment=mood,
                frustration=frustration,
                spam_score=spam_score,
                escalation=decide(text, frustration),
                cues=cues,
                spans=extract_slots(text, region=region, today=today),
                question=bool(_QUESTION.search(text)),
            )
        )
    return out


@overload
def analyze(  # type: ignore[overload-overlap]  # a str is also a Sequence[str]; str wins
    texts: str,
    sentiment: SentimentModel | None = ...,
    spam: SpamModel | None = ...,
    region: str = ...,
    account_id: int | str | None = ...,
    models_dir: Path | None = ...,
) -> Signals: ...


@overload
def analyze(
    texts: Sequence[str],
    sentiment: SentimentModel | None = ...,
    spam: SpamModel | None = ...,
    region: str = ...,
    account_id: int | str | None = ...,
    models_dir: Path | None = ...,
) -> list[Signals]: ...


def analyze(
    texts: str | Sequence[str],
    sentiment: SentimentModel | None = None,
    spam: SpamModel | None = None,
    region: str = "GB",
    account_id: int | str | None = None,
    models_dir: Path | None = None,
) -> Signals | list[Signals]:
    """Signals for each text, in order (one text in, one `Signals` out).

    `region` is the default country for phone numbers. With `account_id`, and an
    intent model trained for that account under `models_dir` (default: `models_root()`)/<account>/intent,
    the intent and out-of-scope decision are added too; with a spam model trained for the
    account (<account>/spam.pkl, see `caredesk.ai.spam.SpamClassifier`), it replaces the rules.
    """
    if isinstance(texts, str):
        return analyze([texts], sentiment, spam, region, account_id, models_dir)[0]
    texts = list(texts)
    intents: list[tuple[str | None, float, bool]] = [(None, 0.0, False)] * len(texts)
    folder = _intent_folder(account_id, models_dir).parent if account_id is not None else None
    has_intent = folder is not None and (folder / "intent" / "meta.json").is_file()
    has_spam = folder is not None and spam is None and (folder / SPAM_FILE).is_file()
    spam_scores: list[float] | None = None
    if folder is None or not (has_intent or has_spam):
        base = _text_signals(texts, sentiment, spam, region, need_spam=True)
    else:
        from caredesk.ai.embedder import get_embedder
        from caredesk.ai.intent import load_intent_model

        embedder = get_embedder()
        model = load_intent_model(folder / "intent") if has_intent else None
        spam_model = load_spam_model(folder / SPAM_FILE) if has_spam else None
        # ONNX Runtime lets go of the GIL: a batch is embedded on other threads (both cores) while
        # this one works out what needs no vectors (text signals, intent n-grams, spam rules).
        # One text is embedded after, on the two-thread session, with no third thread in its way.
        pending = _background().submit(embedder.embed, texts) if len(texts) > 1 else None
        base = _text_signals(texts, sentiment, spam, region, need_spam=not has_spam)
        grams = model.features(texts) if model is not None else None
        rule_scores = spam_model.rules.score(texts) if spam_model is not None else None
        vectors = pending.result() if pending is not None else embedder.embed(texts)
        if model is not None:
            intents = [(p.label, p.confidence, p.out_of_scope) for p in model.predict(texts, vectors, grams)]
        if spam_model is not None:
            spam_scores = spam_model.score(texts, vectors, rule_scores)
    out = []
    for i, (text, sig, (intent, intent_conf, oos)) in enumerate(zip(texts, base, intents, strict=True)):
        esc = sig.escalation
        spam_score = spam_scores[i] if spam_scores is not None else sig.spam_score
        is_spam = spam_score >= SPAM_THRESHOLD
        evidence = [esc.evidence] if esc.evidence else []
        evidence += sig.cues
        out.append(
            Signals(
                text=text,
                language=sig.language,
                sentiment=sig.sentiment,
                frustration=sig.frustration,
                # Spam is not escalated: it goes to the spam folder, where an agent can restore it.
                escalate=esc.escalate and not is_spam,
                escalate_reason=esc.reason if esc.escalate and not is_spam else None,
                spam=is_spam,
                spam_score=spam_score,
                slots=_slot_map(sig.spans),
                spans=sig.spans,
                evidence=evidence,
                question=sig.question,
                intent=intent,
                intent_confidence=intent_conf,
                out_of_scope=oos,
            )
        )
    return out
