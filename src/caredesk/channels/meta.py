"""What WhatsApp Cloud and Messenger share: Meta's webhook handshake and X-Hub-Signature-256."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from caredesk.channels.base import InboxInfo, Malformed, Rejected, WebhookRequest
from caredesk.platform.security import constant_time_equal
from caredesk.web.limits import json_depth

MAX_DEPTH = 32


def verify_hub_signature(inbox: InboxInfo, req: WebhookRequest) -> None:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the app secret>`."""
    secret = str(inbox.config.get("app_secret") or "")
    if not secret:
        raise Rejected("this inbox has no Meta app_secret configured", status=403)
    header = req.header("x-hub-signature-256")
    if not header:
        raise Rejected("X-Hub-Signature-256 header is missing", status=401)
    if not header.startswith("sha256="):
        raise Rejected("X-Hub-Signature-256 must start with sha256=")
    expected = "sha256=" + hmac.new(secret.encode(), req.body, hashlib.sha256).hexdigest()
    if not constant_time_equal(expected, header.strip().lower()):
        raise Rejected("X-Hub-Signature-256 does not match")


def hub_challenge(inbox: InboxInfo, req: WebhookRequest) -> str:
    """GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=.. -> the challenge, if the token matches."""
    expected = str(inbox.config.get("verify_token") or "")
    mode = req.query.get("hub.mode", "")
    token = req.query.get("hub.verify_token", "")
    if mode != "subscribe" or not expected or not constant_time_equal(token, expected):
        raise Rejected("hub.verify_token does not match", status=403)
    return req.query.get("hub.challenge", "")


def load_json(body: bytes) -> Any:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"the body is not valid JSON: {exc}") from exc
    if json_depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise Malformed(f"the JSON is nested deeper than {MAX_DEPTH} levels")
    return value


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} must be an object")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{what} must be a list")
    return value
