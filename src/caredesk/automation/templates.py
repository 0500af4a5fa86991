"""Tiny, safe templates for paths, bodies and replies: `{slot}` and `{result.field.sub}` only.

No expressions and no attribute access on Python objects (str.format would allow `{x.__class__}`),
so a configuration author cannot reach into the process.
"""

from __future__ import annotations

import re
from typing import Any

FIELD = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)*)\}")


class MissingValue(KeyError):
    pass


def lookup(values: dict[str, Any], dotted: str) -> Any:
    cur: Any = values
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise MissingValue(dotted)
    return cur


def _text(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    return str(v)


def render(template: str, values: dict[str, Any], *, quote: Any = None) -> str:
    def sub(m: re.Match[str]) -> str:
        v = _text(lookup(values, m.group(1)))
        return str(quote(v)) if quote else v

    return FIELD.sub(sub, template)


def render_value(value: Any, values: dict[str, Any]) -> Any:
    """Render a JSON body: a string that is exactly one `{field}` keeps the field's type (numbers stay
    numbers)."""
    if isinstance(value, str):
        m = FIELD.fullmatch(value)
        if m:
            return lookup(values, m.group(1))
        return render(value, values)
    if isinstance(value, dict):
        return {k: render_value(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, values) for v in value]
    return value


def fields_of(template: str) -> list[str]:
    return [m.group(1) for m in FIELD.finditer(template)]
