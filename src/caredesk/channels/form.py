"""Strict parsing of form-encoded provider bodies (Twilio): bad encoding is a `Malformed`, never a 500."""

from __future__ import annotations

from urllib.parse import parse_qsl

from caredesk.channels.base import Malformed

MAX_FIELDS = 500


def parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed("the body is not valid UTF-8") from exc
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise Malformed(f"the body is not form-encoded: {exc}") from exc
    return pairs
