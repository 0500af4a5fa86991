"""Language of a message, as an ISO 639-1 code ("und" when unknown).

Lingua (high-accuracy mode) is good on short texts but its models take about
25 MB per language in memory, so:
- a fast path answers "en" for text made mostly of common English words, which
  is most traffic for an English-speaking business, without loading lingua;
- lingua loads lazily, only the languages in CAREDESK_LANGUAGES (default: 12
  common ones), on the first message the fast path cannot settle; or at start
  with `preload()` (the server does, see `Settings.preload_models`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from typing import Any

DEFAULT_LANGUAGES = "en,es,fr,de,it,pt,nl,pl,tr,ru,ar,zh"
_EN_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "i",
        "my",
        "me",
        "you",
        "your",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "this",
        "that",
        "to",
        "of",
        "in",
        "on",
        "for",
        "with",
        "and",
        "or",
        "not",
        "no",
        "have",
        "has",
        "had",
        "do",
        "does",
        "did",
        "can",
        "can't",
        "cannot",
        "don't",
        "didn't",
        "will",
        "would",
        "should",
        "could",
        "please",
        "thanks",
        "thank",
        "hi",
        "hello",
        "hey",
        "what",
        "when",
        "where",
        "why",
        "how",
        "who",
        "which",
        "there",
        "their",
        "they",
        "we",
        "our",
        "us",
        "am",
        "im",
        "i'm",
        "it's",
        "its",
        "order",
        "account",
        "card",
        "refund",
        "help",
        "need",
        "want",
        "get",
        "got",
        "still",
        "yet",
        "just",
        "any",
        "if",
        "but",
        "so",
        "from",
        "at",
        "by",
        "about",
        "ok",
        "okay",
        "yes",
        "yeah",
        "yep",
        "nope",
        "sure",
        "fine",
        "great",
        "cool",
        "bye",
    ]
)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_lock = threading.Lock()
_detector: Any = None


def _lingua(preload: bool = False) -> Any:
    global _detector
    with _lock:
        if _detector is None:
            from lingua import IsoCode639_1, LanguageDetectorBuilder

            codes = os.environ.get("CAREDESK_LANGUAGES", DEFAULT_LANGUAGES).split(",")
            isos = [getattr(IsoCode639_1, c.strip().upper()) for c in codes if c.strip()]
            builder = LanguageDetectorBuilder.from_iso_codes_639_1(*isos)
            _detector = (builder.with_preloaded_language_models() if preload else builder).build()
        return _detector


def preload() -> None:
    """Load lingua's models now, all of them. Loading takes seconds of CPU and holds the GIL all along
    (lingua is Rust and does not release it), so a lazy load on the first message the fast path cannot
    settle freezes every other thread of the process, the web server's event loop included: a process
    that serves clients and runs the AI step calls this before it accepts connections."""
    _lingua(preload=True)


def _english(words: list[str]) -> bool:
    """Whether the words (in lower case) are mostly common English ones."""
    if not words:
        return False
    hits = sum(map(_EN_WORDS.__contains__, words))
    return (hits >= 2 and hits / len(words) >= 0.3) or (len(words) <= 2 and hits == len(words))


def _words(text: str) -> list[str]:
    """The text's words in lower case. An ASCII text is lowered first (one call, same words: ASCII
    letters stay letters); others word by word, as `lower()` can change their length (İ)."""
    if text.isascii():
        return _WORD.findall(text.lower())
    return [w.lower() for w in _WORD.findall(text)]


def detect_languages(texts: Sequence[str]) -> list[str]:
    out: list[str] = []
    for text in texts:
        words = _words(text)
        if not words:
            out.append("und")
        elif _english(words):
            out.append("en")
        else:
            values = _lingua().compute_language_confidence_values(text)
            top = values[0] if values else None
            out.append(top.language.iso_code_639_1.name.lower() if top and top.value >= 0.2 else "und")
    return out
