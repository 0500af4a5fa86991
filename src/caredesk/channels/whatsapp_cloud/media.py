"""WhatsApp Cloud API media: the webhook carries a media id; `GET <api_base>/<media id>` with the access
token answers a short-lived `url` (with `mime_type`, `sha256`, `file_size`), which is fetched with the
same bearer token. The URL expires after minutes, so every attempt asks for a fresh one."""

from __future__ import annotations

import re
from typing import Any

import httpx

from caredesk.channels.media import (
    Download,
    MediaRefused,
    check_declared_size,
    download,
    get_json,
    matches_sha256,
    media_type,
    safe_name,
)
from caredesk.channels.whatsapp_cloud.sender import DEFAULT_API
from caredesk.platform.jobs import RetryLater

_MEDIA_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


async def fetch_whatsapp(
    http: httpx.AsyncClient, item: dict[str, Any], cfg: dict[str, Any], max_bytes: int
) -> Download:
    token = str(cfg.get("access_token") or "")
    if not token:
        raise MediaRefused("the WhatsApp inbox has no access_token to fetch media with")
    media_id = str(item.get("id") or "")
    if not _MEDIA_ID.fullmatch(media_id):
        raise MediaRefused("the media id is not one WhatsApp gives")
    bearer = {"authorization": f"Bearer {token}"}
    base = str(cfg.get("api_base") or DEFAULT_API).rstrip("/")
    params = {"phone_number_id": str(cfg["phone_number_id"])} if cfg.get("phone_number_id") else None
    info = await get_json(http, f"{base}/{media_id}", "WhatsApp", headers=bearer, params=params)
    url = info.get("url")
    if not isinstance(url, str) or not url:
        raise RetryLater("WhatsApp gave no media URL")
    check_declared_size(info.get("file_size"), max_bytes)
    data, served = await download(http, url, "WhatsApp", max_bytes, headers=bearer)
    if not matches_sha256(data, info.get("sha256")):
        raise RetryLater("the WhatsApp download does not match its SHA-256")
    ctype = media_type(item.get("mime_type"), info.get("mime_type"), served)
    kind = str(item.get("type") or "media")
    return Download(data, ctype, safe_name(str(item.get("filename") or ""), ctype, f"{kind}-{media_id}"))
