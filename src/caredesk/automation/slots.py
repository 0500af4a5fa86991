"""Slots: pulled out of the customer's words with the action's declared pattern, validated, normalised."""

from __future__ import annotations

import re
from typing import Any

from caredesk.automation.config import ActionSpec, SlotSpec
from caredesk.automation.templates import render

EMAIL = re.compile(r"[^@\s<>(),;:]+@[^@\s<>(),;:]+\.[a-zA-Z]{2,}")
NUMBER = re.compile(r"(?<![\w-])(\d{1,7}(?:[.,]\d{1,2})?)(?![\w-])")


class SlotInvalid(ValueError):
    pass


def normalise(spec: SlotSpec, raw: Any) -> Any:
    """A valid value for the slot, or SlotInvalid with the text to show the customer."""
    if spec.type == "number":
        try:
            value: Any = float(str(raw).replace(",", ".").strip().lstrip("€$").strip())
        except ValueError as exc:
            raise SlotInvalid(render(spec.invalid, {"prompt": spec.prompt})) from exc
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            raise SlotInvalid(render(spec.invalid, {"prompt": spec.prompt}))
        return round(value, 2)
    text = str(raw).strip()
    if spec.normalize == "upper":
        text = text.upper()
    elif spec.normalize == "lower":
        text = text.lower()
    if spec.type == "email" and not EMAIL.fullmatch(text):
        raise SlotInvalid(render(spec.invalid, {"prompt": spec.prompt}))
    if spec.pattern and not re.fullmatch(spec.pattern, text, re.IGNORECASE):
        raise SlotInvalid(render(spec.invalid, {"prompt": spec.prompt}))
    if spec.choices and text.lower() not in {c.lower() for c in spec.choices}:
        raise SlotInvalid(render(spec.invalid, {"prompt": spec.prompt}))
    if not text:
        raise SlotInvalid(render(spec.invalid, {"prompt": spec.prompt}))
    return text


def find_in_text(spec: SlotSpec, text: str) -> Any | None:
    """The first value in free text that validates for this slot, or None."""
    candidates: list[str] = []
    if spec.pattern:
        for m in re.finditer(spec.pattern, text, re.IGNORECASE):
            groups = [g for g in m.groups() if g]
            candidates.append(groups[0] if groups else m.group(0))
    elif spec.type == "email":
        candidates = EMAIL.findall(text)
    elif spec.type == "number":
        candidates = NUMBER.findall(text)
    elif spec.choices:
        low = text.lower()
        candidates = [c for c in spec.choices if re.search(rf"\b{re.escape(c.lower())}\b", low)]
    for c in candidates:
        try:
            return normalise(spec, c)
        except SlotInvalid:
            continue
    return None


def extract(action: ActionSpec, text: str, offered: dict[str, Any]) -> dict[str, Any]:
    """Slot values found in this message: the understanding's slots first, then the declared patterns."""
    out: dict[str, Any] = {}
    for name, spec in action.slots.items():
        if name in offered and offered[name] not in (None, ""):
            try:
                out[name] = normalise(spec, offered[name])
                continue
            except SlotInvalid:
                pass
        if spec.pattern or spec.type in ("email", "number") or spec.choices:
            found = find_in_text(spec, text)
            if found is not None:
                out[name] = found
    return out


def missing(
    action: ActionSpec, known: dict[str, Any], provided_by_lookup: set[str] | None = None
) -> list[str]:
    skip = provided_by_lookup or set()
    return [n for n, s in action.slots.items() if s.required and n not in skip and known.get(n) in (None, "")]


def validated(action: ActionSpec, values: dict[str, Any]) -> dict[str, Any]:
    """Only the action's slots, each normalised; raises SlotInvalid on the first bad one."""
    out: dict[str, Any] = {}
    for name, spec in action.slots.items():
        if values.get(name) not in (None, ""):
            out[name] = normalise(spec, values[name])
    return out
