"""Messenger attachments: the webhook's `payload.url` is a plain CDN URL (no credentials); it expires,
hence the download as soon as the message is stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from caredesk.channels.media import Download, download, media_type, safe_name


async def fetch_messenger(
    http: httpx.AsyncClient, item: dict[str, Any], cfg: dict[str, Any], max_bytes: int
) -> Download:
    url = str(item["url"])
    data, served = await download(http, url, "Messenger", max_bytes)
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    ctype = media_type(served, filename=name)
    return Download(data, ctype, safe_name(name, ctype, str(item.get("type") or "file")))
