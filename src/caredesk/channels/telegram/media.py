"""Telegram files: `getFile` with the bot token answers a `file_path`, downloaded from
`<api_base>/file/bot<token>/<file_path>` (bots may download files up to 20 MB; the link lasts at least an
hour, and each attempt asks for a fresh one). The token is part of those URLs: they are never logged
(see `caredesk.channels.base.redact`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from caredesk.channels.media import (
    Download,
    MediaRefused,
    check_declared_size,
    download,
    get_json,
    media_type,
    safe_name,
)
from caredesk.channels.telegram.sender import DEFAULT_API


async def fetch_telegram(
    http: httpx.AsyncClient, item: dict[str, Any], cfg: dict[str, Any], max_bytes: int
) -> Download:
    token = str(cfg.get("bot_token") or "")
    if not token:
        raise MediaRefused("the Telegram inbox has no bot_token to fetch files with")
    file_id = str(item.get("file_id") or "")
    base = str(cfg.get("api_base") or DEFAULT_API).rstrip("/")
    check_declared_size(item.get("file_size"), max_bytes)
    info = await get_json(http, f"{base}/bot{token}/getFile", "Telegram", params={"file_id": file_id})
    result = info.get("result")
    if not info.get("ok") or not isinstance(result, dict):
        raise MediaRefused(f"Telegram refused getFile: {str(info.get('description') or 'no reason')[:200]}")
    check_declared_size(result.get("file_size"), max_bytes)
    path = result.get("file_path")
    if not isinstance(path, str) or not path:
        raise MediaRefused("Telegram gave no file path (bots cannot download files over 20 MB)")
    data, served = await download(http, f"{base}/file/bot{token}/{quote(path)}", "Telegram", max_bytes)
    name = str(item.get("file_name") or "") or path
    ctype = media_type(item.get("mime_type"), served, filename=name)
    return Download(data, ctype, safe_name(name, ctype, str(item.get("type") or "file")))
