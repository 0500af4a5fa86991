"""X-Twilio-Signature, exactly as Twilio specifies it.

The string signed is the full URL Twilio called (query string included), followed by every POST
parameter as name + value with no separators, sorted by name; HMAC-SHA1 keyed with the account's
auth token; base64. Compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    data = url + "".join(k + v for k, v in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_signature_valid(
    auth_token: str, signature: str, urls: Iterable[str], params: list[tuple[str, str]]
) -> bool:
    if not signature or not auth_token:
        return False
    ok = False
    for url in urls:
        # No early exit: every candidate URL costs the same, whichever one matches.
        ok |= hmac.compare_digest(twilio_signature(auth_token, url, params).encode(), signature.encode())
    return ok
