"""Twilio media (SMS/MMS and WhatsApp): `MediaUrlN` from the webhook, fetched with HTTP Basic auth.

Twilio can require authentication for media URLs: the user is an API key SID (`api_key_sid` +
`api_key_secret` in the inbox config) or the account SID with the auth token. The credentials go only to
the inbox's API origin (`api_base`, default https://api.twilio.com); Twilio's redirect to its CDN is
followed without them (httpx drops Authorization when a redirect leaves the origin).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from caredesk.channels.media import Download, download, media_type, safe_name
from caredesk.channels.twilio.sender import DEFAULT_API

_ACCOUNT_IN_URL = re.compile(r"/Accounts/(AC[0-9a-fA-F]{32})/")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def twilio_auth(url: str, cfg: dict[str, Any]) -> tuple[str, str] | None:
    if _origin(url) != _origin(str(cfg.get("api_base") or DEFAULT_API)):
        return None
    if cfg.get("api_key_sid") and cfg.get("api_key_secret"):
        return str(cfg["api_key_sid"]), str(cfg["api_key_secret"])
    found = _ACCOUNT_IN_URL.search(url)
    sid = str(cfg.get("account_sid") or (found.group(1) if found else ""))
    token = str(cfg.get("auth_token") or "")
    return (sid, token) if sid and token else None


async def fetch_twilio(
    http: httpx.AsyncClient, item: dict[str, Any], cfg: dict[str, Any], max_bytes: int
) -> Download:
    url = str(item["url"])
    data, served = await download(http, url, "Twilio", max_bytes, auth=twilio_auth(url, cfg))
    ctype = media_type(item.get("content_type"), served)
    media_sid = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    return Download(data, ctype, safe_name(media_sid, ctype, "twilio-media"))
