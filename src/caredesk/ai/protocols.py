"""The small protocols every AI component sits behind.

The rest of Caredesk depends on these shapes only, so an embedded default can be
swapped for another implementation (a different encoder, a hosted model) without
touching callers. Each protocol is batched: callers hand over a list of texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class IntentPrediction:
    text: str
    label: str  # "oos" when out of scope
    confidence: float
    out_of_scope: bool


@dataclass(frozen=True, slots=True)
class Citation:
    article_id: str
    title: str
    passage: str


@dataclass(frozen=True, slots=True)
class Draft:
    text: str
    citations: tuple[Citation, ...]
    source: str  # "llm" or "embedded"


@runtime_checkable
class Embedder(Protocol):
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length sentence vectors, one row per text, in order."""
        ...


@runtime_checkable
class IntentModel(Protocol):
    labels: list[str]

    def predict(self, texts: Sequence[str], vectors: Vectors | None = None) -> list[IntentPrediction]: ...


@runtime_checkable
class SentimentModel(Protocol):
    def score(self, texts: Sequence[str]) -> list[tuple[float, float]]:
        """(sentiment in [-1, 1], frustration in [0, 1]) per text."""
        ...


@runtime_checkable
class SpamModel(Protocol):
    def score(self, texts: Sequence[str]) -> list[float]:
        """Probability-like spam/scam score in [0, 1] per text."""
        ...


@runtime_checkable
class Drafter(Protocol):
    def draft_reply(self, customer_message: str, passages: Sequence[Citation]) -> Draft: ...

    def summarize(self, transcript: Sequence[str]) -> str: ...
