"""Strict parsing of form-encoded provider bodies (Twilio): bad encoding is a `Malformed`, never a 500."""

from __future__ import annotations

from urllib.parse import parse_qsl

from caredesk.channels.base import Malformed

MAX_FIELDS = 500


_last: tuple[bytes, list[tuple[str, str]]] | None = None


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The pairs of a form body. The last body's pairs are kept: an adapter's `verify` and `parse` both
    read the same request (same bytes object), and parsing it is most of a Twilio webhook's own cost."""
    global _last
    last = _last
    if last is not None and last[0] is body:
        return list(last[1])
    pairs = _parse(body)
    _last = (body, pairs)
    return list(pairs)


def _parse(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed("the body is not valid UTF-8") from exc
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise Malformed(f"the body is not form-encoded: {exc}") from exc
    return pairs
