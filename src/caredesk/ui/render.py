"""Jinja2 setup for the workspace: autoescape always on, so customer text is shown, never run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).resolve().parent / "templates"

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its extension
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _ago(value: str | dt.datetime | None) -> str:
    """'5 min', '3 h', '2 d' since a timestamp (UTC, as the API writes it)."""
    if not value:
        return ""
    when = dt.datetime.fromisoformat(value.rstrip("Z")) if isinstance(value, str) else value
    secs = max(0, int((dt.datetime.now(dt.UTC).replace(tzinfo=None) - when).total_seconds()))
    if secs < 60:
        return "now"
    if secs < 3600:
        return f"{secs // 60} min"
    if secs < 86400:
        return f"{secs // 3600} h"
    return f"{secs // 86400} d"


def _clock(value: str | None) -> str:
    return "" if not value else value[:16].replace("T", " ")


env.filters["ago"] = _ago
env.filters["clock"] = _clock


def page(
    name: str, status_code: int = 200, headers: dict[str, str] | None = None, **ctx: Any
) -> HTMLResponse:
    return HTMLResponse(env.get_template(name).render(**ctx), status_code=status_code, headers=headers)


def fragment(name: str, **ctx: Any) -> str:
    return env.get_template(name).render(**ctx)
