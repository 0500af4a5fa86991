"""The literal prefilter skips only patterns that cannot match, so every signal comes out as without it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import caredesk.ai.signals  # noqa: F401  (imports every module that makes a gate)
from caredesk.ai import prefilter
from caredesk.ai.escalation import decide
from caredesk.ai.prefilter import DIGIT, GATES, Gate, fold, gate, required_literals
from caredesk.ai.sentiment import LexiconSentiment, frustration_cues
from caredesk.ai.signals import analyze
from caredesk.ai.slots import extract_slots
from caredesk.ai.spam import RuleSpamScorer

from .conftest import SHARED_DATA, read_jsonl


def test_fold_maps_what_re_matches_to_an_ascii_character_onto_that_character() -> None:
    every = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000)
    for a in map(chr, range(128)):
        for flags in (0, re.IGNORECASE):
            for c in set(re.findall(re.escape(a), every, flags)):
                assert fold(c) == a.lower(), (hex(ord(c)), a)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\b(?:useless|hopeless)\b", {"useless", "hopeless"}),
        (r"\bstill (?:no|not)\b", {"still no"}),  # the parser factors out "no"
        (r"[Mm]y name is", {"my name is"}),
        (r"\b(?:frustrat\w*|fed up)\b", {"frustrat", "fed up"}),
        (r"order #?(\d{4,})", {"order "}),
        (r"\b\d{5}\b", {DIGIT}),
        (r"(?:ab)?cd", {"cd"}),
        (r"(?:refund)+", {"refund"}),
    ],
)
def test_required_literals(pattern: str, expected: set[str]) -> None:
    assert required_literals(re.compile(pattern, re.IGNORECASE)) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [(r"\w+@\w+", {"@"}), (r"(\w+) \1", {" "}), (r"(?:a|)b?", None), (r"(?=refund)\w+", None), (r".*", None)],
)
def test_a_pattern_without_a_required_string_always_runs(pattern: str, expected: set[str] | None) -> None:
    assert required_literals(re.compile(pattern)) == expected
    if expected is None:
        g = gate([re.compile(pattern)])
        assert g.may_match("") and g.may_match("anything at all")


def test_select_keeps_order_and_skips_what_cannot_match() -> None:
    rules = [
        (re.compile(r"\brefund\b", re.I), 1),
        (re.compile(r"\bhello\b", re.I), 2),
        (re.compile(r"x*"), 3),
    ]
    g: Gate[tuple[re.Pattern[str], int]] = Gate(rules, [rx for rx, _ in rules])
    assert [w for _rx, w in g.select("Hello, I want a REFUND")] == [1, 2, 3]
    assert [w for _rx, w in g.select("nothing here")] == [3]
    assert [w for _rx, w in g.select("\u0130 said hello")] == [2, 3]


def _all_patterns() -> Iterator[tuple[Gate[object], int]]:
    for g in list(GATES):
        for i in range(len(g.entries)):
            yield g, i


PATTERNS = list(_all_patterns())


@pytest.mark.parametrize(("g", "index"), PATTERNS, ids=[f"{g.patterns[i].pattern[:30]}" for g, i in PATTERNS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_match_passes_the_gate(g: Gate[object], index: int, data: st.DataObject) -> None:
    rx = g.patterns[index]
    text = data.draw(st.from_regex(rx))
    if rx.search(text):
        assert g.entries[index] in g.select(text)


def _signals_corpus() -> list[str]:
    texts = [r["text"] for r in read_jsonl(SHARED_DATA / "banking77" / "test.jsonl")][::3]
    texts += [r["text"] for r in read_jsonl(SHARED_DATA / "sms_spam" / "all.jsonl")][::4]
    texts += [r["text"] for r in read_jsonl(SHARED_DATA / "clinc150" / "valid.jsonl")][::4]
    # Every pattern's words, so each rule fires somewhere, alone and mixed with others.
    words = sorted({w for g in GATES for req in g.requirements if req for w in req if w != DIGIT})
    texts += [f"{w} and {words[(i * 7) % len(words)]} {i}" for i, w in enumerate(words)]
    texts += [w.upper() + "!!" for w in words[::5]]
    return texts


def _everything(texts: list[str]) -> list[object]:
    lex, rules = LexiconSentiment(), RuleSpamScorer()
    out: list[object] = []
    for text in texts:
        mood, frust = lex.score_one(text)
        out.append(
            (
                mood,
                frust,
                frustration_cues(text),
                rules.score_one(text),
                decide(text, frust),
                decide(text, 0.0),
                extract_slots(text, region="GB"),
            )
        )
    out += analyze(texts)
    return out


@pytest.mark.slow
def test_signals_are_the_same_with_and_without_the_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _signals_corpus()
    gated = _everything(texts)
    monkeypatch.setattr(prefilter.Gate, "select", lambda self, text: self.entries)
    ungated = _everything(texts)
    assert len(gated) == len(ungated) > len(texts)
    for text, a, b in zip(texts + texts, gated, ungated, strict=True):
        assert a == b, text
