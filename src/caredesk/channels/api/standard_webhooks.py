"""Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp`, `webhook-signature`.

The signed content is `<id>.<timestamp>.<raw body>`; the signature is `v1,<base64 HMAC-SHA256>`
keyed with the secret's bytes (`whsec_<base64>`); the header may list several space-separated
signatures (key rotation). Timestamps more than five minutes away are refused (stale or replayed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

from caredesk.channels.base import Rejected

TOLERANCE_SECONDS = 300
PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    raw = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), content, hashlib.sha256).digest()).decode()


def headers_for(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> str:
    """Returns the webhook-id of a genuine, fresh request; raises `Rejected` otherwise."""
    msg_id, ts_raw, sigs = (
        headers.get("webhook-id", ""),
        headers.get("webhook-timestamp", ""),
        headers.get("webhook-signature", ""),
    )
    if not msg_id or not ts_raw or not sigs:
        raise Rejected("webhook-id, webhook-timestamp and webhook-signature headers are required", status=401)
    if len(msg_id) > 200:
        raise Rejected("webhook-id is too long")
    try:
        ts = int(ts_raw)
    except ValueError as exc:
        raise Rejected("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > TOLERANCE_SECONDS:
        raise Rejected("webhook-timestamp is too old or too new")
    expected = sign(secret, msg_id, ts, body).split(",", 1)[1].encode()
    ok = False
    for candidate in sigs.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1":
            ok |= hmac.compare_digest(expected, value.encode())
    if not ok:
        raise Rejected("webhook-signature does not match")
    return msg_id
