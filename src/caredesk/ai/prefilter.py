"""Skip the regular expressions that cannot match a text, without changing any result.

The signals run some 70 hand-written patterns over every message, and most match nothing: a
search that fails still walks the whole text trying every alternative at every position
(3-14 us a pattern on a 55-character message). Almost every pattern names words of its own,
and every match of it contains at least one of them ("refund", "passed away", "ombudsman").
So:

- `required_literals(rx)` reads the pattern's syntax tree and returns a set of lower-case
  ASCII strings of which every match holds at least one (or `DIGIT`: a decimal digit), or
  None when it finds no such set (the pattern is then always run);
- one scan per text finds which of all registered literals the text holds: a trie-shaped
  alternation tried at each position of the case-folded text (~6 us for ~600 literals),
  cached for the few calls that look at the same text (sentiment, frustration cues, spam,
  escalation, slots);
- `Gate.select(text)` returns the entries (pattern plus its payload) that may match, in
  their original order, so sums and "first match wins" come out exactly as before.

Soundness. The case fold maps every character that a pattern's ASCII letter matches, with or
without IGNORECASE, to that letter in lower case: `str.lower`, plus the three characters
whose `lower()` differs from the ASCII letter `re` lets them match (İ and ı match i, ſ
matches s; tests check the table against every code point). Literal runs are only taken
from parts every match must go through (a sequence, each branch of an alternation, a repeat
of at least one); anything else (classes, optional parts, look-arounds, back-references) is
skipped, which only weakens the filter. When in doubt the pattern runs.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

DIGIT = "\\d"  # the requirement "holds a decimal digit" (checked with `re`'s own \d)
# Non-ASCII characters that `re` matches to an ASCII letter (with IGNORECASE) although their
# `str.lower()` is not that letter.
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s"})
_DIGIT_RX = re.compile(r"\d")

T = TypeVar("T")


def fold(text: str) -> str:
    """The text as the literal scan sees it."""
    return text.lower() if text.isascii() else text.translate(_FOLD).lower()


def _parser() -> tuple[Any, Any]:
    return importlib.import_module("re._parser"), importlib.import_module("re._constants")


class _Shape(NamedTuple):
    """What every match of a part of a pattern looks like, in folded text (None: not known)."""

    full: frozenset[str] | None  # the match is one of these strings
    pre: frozenset[str] | None  # the match starts with one of these
    suf: frozenset[str] | None  # the match ends with one of these
    req: frozenset[str] | None  # the match holds one of these (or a digit, for DIGIT)


_MAX_SET = 256  # strings per set; past that a set is cut short (weaker, still sound)
_NOTHING = _Shape(None, None, None, None)
_EMPTY = frozenset([""])


def _exact(strings: frozenset[str]) -> _Shape:
    return _Shape(strings, strings, strings, strings if "" not in strings else None)


def _cat(a: frozenset[str], b: frozenset[str]) -> frozenset[str] | None:
    if len(a) * len(b) > _MAX_SET:
        return None
    return frozenset(x + y for x in a for y in b)


def _best(cands: list[frozenset[str]]) -> frozenset[str] | None:
    usable = [c for c in cands if c and "" not in c]
    if not usable:
        return None

    def score(req: frozenset[str]) -> tuple[int, int]:
        return min(3 if s == DIGIT else len(s) for s in req), -len(req)

    return max(usable, key=score)


def _sequence(items: Iterable[tuple[Any, Any]], c: Any) -> _Shape:
    cands: list[frozenset[str]] = []
    cur = _EMPTY  # the strings the match so far ends with, as one unbroken run
    pre: frozenset[str] | None = None  # set once a part that is not a fixed string is met
    for node in items:
        shape = _node(node, c)
        if shape.full is not None:
            joined = _cat(cur, shape.full)
            if joined is not None:
                cur = joined
                continue
            head = cur  # too many strings: end the run here
            cands.append(head)
            pre = head if pre is None else pre
            cur = shape.full
            continue
        head = (_cat(cur, shape.pre) if shape.pre is not None else None) or cur
        if cur != _EMPTY:  # else `head` is the part's own prefix, already weighed in `shape.req`
            cands.append(head)
        pre = head if pre is None else pre
        if shape.req is not None:
            cands.append(shape.req)
        cur = shape.suf if shape.suf is not None else _EMPTY
    cands.append(cur)
    if pre is None:  # fixed strings only
        return _Shape(cur, cur, cur, _best(cands))
    return _Shape(None, pre, cur, _best(cands))


def _union(parts: list[frozenset[str] | None], cap: int = _MAX_SET) -> frozenset[str] | None:
    out: set[str] = set()
    for part in parts:
        if part is None:
            return None
        out |= part
    return frozenset(out) if len(out) <= cap else None


def _node(node: tuple[Any, Any], c: Any) -> _Shape:
    op, av = node
    if op is c.LITERAL:
        return _exact(frozenset([chr(av).lower()])) if av < 128 else _NOTHING
    if op is c.IN:
        if av == [(c.CATEGORY, c.CATEGORY_DIGIT)]:
            return _Shape(None, None, None, frozenset([DIGIT]))
        if av and len(av) <= 8 and all(o is c.LITERAL and a < 128 for o, a in av):
            return _exact(frozenset(chr(a).lower() for _o, a in av))  # [Mm], [sz], [- ]
        return _NOTHING
    if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
        return _exact(_EMPTY)  # takes no characters: the runs on both sides stay joined
    if op is c.SUBPATTERN:
        return _sequence(av[3], c)
    if op is getattr(c, "ATOMIC_GROUP", None):
        return _sequence(av, c)
    if op is c.BRANCH:
        alts = [_sequence(alt, c) for alt in av[1]]
        return _Shape(
            _union([a.full for a in alts]),
            _union([a.pre for a in alts]),
            _union([a.suf for a in alts]),
            _union([a.req for a in alts], cap=1 << 30),  # every alternative has its own
        )
    if op in (c.MAX_REPEAT, c.MIN_REPEAT) or op is getattr(c, "POSSESSIVE_REPEAT", None):
        low, high, item = av
        shape = _sequence(item, c)
        if low == high == 1:
            return shape
        if low >= 1:
            return _Shape(None, shape.pre, shape.suf, shape.req)
        if high == 1 and shape.full is not None:  # optional fixed string: it or nothing
            return _exact(shape.full | _EMPTY)
    return _NOTHING


def _minimal(req: frozenset[str]) -> frozenset[str]:
    """Drop strings that hold another of the set: a text with them holds that one too."""
    return frozenset(s for s in req if s == DIGIT or not any(o != s and o != DIGIT and o in s for o in req))


def required_literals(rx: re.Pattern[str]) -> frozenset[str] | None:
    """Strings (lower case, ASCII; or `DIGIT`) of which every match of `rx` holds one, in the
    text as `fold` gives it; None when no such set is known."""
    try:
        parser, constants = _parser()
        req = _sequence(parser.parse(rx.pattern, rx.flags), constants).req
    except Exception:  # an unknown parser: no filter, every pattern runs
        return None
    if req is None or "" in req:
        return None
    return _minimal(req)


def _trie_source(words: Iterable[str]) -> str:
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + emit(node[ch]) for ch in sorted(k for k in node if k)]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


class _Scanner:
    """The literals of all gates, found in one pass per text. Each gated pattern has a bit of
    its own; a literal stands for the bits of the patterns that require it."""

    def __init__(self) -> None:
        self.literals: dict[str, int] = {}
        self.width = 0  # bits handed out
        self._lock = threading.Lock()
        self._state: tuple[re.Pattern[str], dict[str, int], int] | None = None
        self._cache: dict[str, int] = {}

    def register(self, requirements: Sequence[frozenset[str] | None]) -> int:
        """Bits for these patterns' requirements (None: no bit needed); returns the first bit."""
        with self._lock:
            offset = self.width
            self.width += len(requirements)
            for i, req in enumerate(requirements):
                for lit in req or ():
                    self.literals[lit] = self.literals.get(lit, 0) | 1 << (offset + i)
            self._state = None
            self._cache = {}
            return offset

    def _build(self) -> tuple[re.Pattern[str], dict[str, int], int]:
        with self._lock:
            if self._state is None:
                lits = {w: m for w, m in self.literals.items() if w != DIGIT}
                # The scan reports the longest literal at each position; the others starting
                # there are its prefixes.
                closure = {w: _or(lits.get(w[:i], 0) for i in range(1, len(w) + 1)) for w in lits}
                rx = re.compile(f"(?=({_trie_source(lits)}))") if lits else re.compile(r"(?!)")
                self._state = (rx, closure, self.literals.get(DIGIT, 0))
            return self._state

    def mask(self, text: str) -> int:
        """The bits of the patterns whose required literals `text` holds."""
        cache = self._cache
        hit = cache.get(text)
        if hit is not None:
            return hit
        rx, closure, digit = self._state or self._build()
        out = 0
        for w in rx.findall(fold(text)):
            out |= closure[w]
        if digit and _DIGIT_RX.search(text):
            out |= digit
        if len(cache) >= 64:  # callers look at one text at a time (signals.analyze)
            cache.clear()
        if cache is self._cache:  # not a cache emptied by a new gate meanwhile
            cache[text] = out
        return out


def _or(masks: Iterable[int]) -> int:
    out = 0
    for m in masks:
        out |= m
    return out


_SCANNER = _Scanner()
GATES: list[Gate[Any]] = []  # every gate made, for the tests that check them all


class Gate(Generic[T]):
    """Entries (a pattern and what goes with it) of which `select` returns those that may match.

    Results are in the order given, so a caller that loops over `select(text)` instead of over
    all entries gets the same matches in the same order."""

    def __init__(self, entries: Sequence[T], patterns: Sequence[re.Pattern[str]]) -> None:
        if len(entries) != len(patterns):
            raise ValueError("one pattern per entry")
        self.entries = tuple(entries)
        self.patterns = tuple(patterns)
        self.requirements = [required_literals(rx) for rx in patterns]
        self._always = _or(1 << i for i, req in enumerate(self.requirements) if req is None)
        self._all = (1 << len(self.entries)) - 1
        self._selected: dict[int, tuple[T, ...]] = {}
        self._offset = _SCANNER.register(self.requirements)
        GATES.append(self)

    def select(self, text: str) -> tuple[T, ...]:
        mask = (_SCANNER.mask(text) >> self._offset) & self._all | self._always
        out = self._selected.get(mask)
        if out is None:
            if len(self._selected) >= 4096:
                self._selected.clear()
            out = self._selected[mask] = tuple(e for i, e in enumerate(self.entries) if mask >> i & 1)
        return out

    def may_match(self, text: str) -> bool:
        """Whether any entry may match (for a gate of one pattern: whether it may)."""
        return bool(self.select(text))


def gate(patterns: Sequence[re.Pattern[str]]) -> Gate[re.Pattern[str]]:
    """A gate whose entries are the patterns themselves."""
    return Gate(patterns, patterns)
