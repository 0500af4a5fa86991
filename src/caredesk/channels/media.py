"""Provider media brought home: the `message.media` job downloads the files a customer sent (kept by the
adapters as provider URLs or ids in `message.meta["media"]`) into the account's storage, as attachments.

Provider URLs need the inbox's credentials and expire, so an agent could not open them and they would be
lost after a while. The job is enqueued by `ingest` in the transaction that stores the message; the
webhook itself never touches the network. For each media item, keyed by its provider URL or id:

- downloaded with the inbox's credentials (each provider's `media.py` knows how), streamed and cut off at
  the size limit, its type checked against `ACCEPTED_TYPES` (and the leading bytes of the types whose
  files have a signature), stored with `services.storage` and recorded as an `Attachment` of the message,
  and the item marked `status: stored` with the attachment id, in one transaction that holds the
  message's row: a job that runs twice never makes two attachments for one item;
- refused by the provider (4xx other than 429), too large, of a type not accepted: marked `status: failed`
  with the reason (no retry; the original URL or id stays in the item);
- 429, 5xx, timeouts: the job is retried with backoff (Retry-After honoured); after its last attempt the
  items still missing are marked failed with `retryable: true`, and the dead job's retry tries them again.

Each change emits `message.updated` (with the attachments), so an open conversation shows the files.
Credentials never reach logs, job errors or the message: reasons name the provider's status, not URLs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy.orm import Session

from caredesk.accounts.models import Inbox
from caredesk.channels.base import MEDIA_JOB, retry_after_seconds
from caredesk.conversations.actions import emit_message_updated
from caredesk.conversations.models import Attachment, Message
from caredesk.platform.jobs import JobContext, RetryLater
from caredesk.platform.storage import ALLOWED_TYPES

log = logging.getLogger(__name__)

JOB = MEDIA_JOB
MAX_ITEMS = 10  # per message (Twilio's own maximum); the rest are marked failed
DEFAULT_TIMEOUT_S = 30.0
_OCTET = ("application/octet-stream", "binary/octet-stream", "")

# What a customer's message may bring: the widget's types (images, PDF, text) plus what phones send
# (voice notes, videos, contact cards, office documents). HTML, SVG and executables are refused.
ACCEPTED_TYPES = frozenset(
    {
        *ALLOWED_TYPES,
        "text/csv",
        "text/vcard",
        "text/x-vcard",
        "audio/ogg",
        "audio/opus",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/amr",
        "audio/webm",
        "audio/wav",
        "audio/x-wav",
        "video/mp4",
        "video/3gpp",
        "video/quicktime",
        "video/webm",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
    }
)
_TEXT_TYPES = ("text/plain", "text/csv", "text/vcard", "text/x-vcard")


class MediaRefused(Exception):
    """No retry will fetch this item (the provider refused it, too large, type not accepted): the
    message says why, for the agent; it never contains a URL or a credential."""


@dataclass(frozen=True, slots=True)
class MediaLimits:
    max_bytes: int
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class Download:
    data: bytes
    content_type: str  # the declared or served type; `check_media` decides
    filename: str


# A provider's fetcher: (HTTP client, the media item, the inbox's config, the size limit) -> the file.
Fetcher = Callable[[httpx.AsyncClient, dict[str, Any], dict[str, Any], int], Awaitable[Download]]


def fetchers() -> dict[str, Fetcher]:
    """Inbox channel -> its fetcher (imported lazily, like the adapters)."""
    from caredesk.channels.messenger.media import fetch_messenger
    from caredesk.channels.telegram.media import fetch_telegram
    from caredesk.channels.twilio.media import fetch_twilio
    from caredesk.channels.whatsapp_cloud.media import fetch_whatsapp

    return {
        "twilio_sms": fetch_twilio,
        "twilio_whatsapp": fetch_twilio,
        "whatsapp_cloud": fetch_whatsapp,
        "telegram": fetch_telegram,
        "messenger": fetch_messenger,
    }


def source_of(item: Any) -> str | None:
    """What identifies a media item at its provider (URL, media id or file id): the key of the work
    (`caredesk.channels.base.fetchable` reads the same keys)."""
    if not isinstance(item, dict):
        return None
    for k in ("url", "id", "file_id"):
        v = item.get(k)
        if isinstance(v, str) and v:
            return v
    return None


# ---- HTTP, classified for the job system ---------------------------------------------------------------


def _provider_says(body: bytes) -> str:
    """The provider's own short reason from a JSON error body (Telegram `description`, Graph
    `error.message`), never the request."""
    try:
        value = orjson.loads(body[:4096])
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(value, dict):
        return ""
    err = value.get("error")
    text = value.get("description") or (err.get("message") if isinstance(err, dict) else None)
    text = text or value.get("message")
    return f": {str(text)[:200]}" if text else ""


def _classify(resp: httpx.Response, body: bytes, what: str) -> None:
    code = resp.status_code
    if code == 429 or code >= 500:
        raise RetryLater(
            f"{what} answered {code}", after=retry_after_seconds(resp.headers.get("retry-after"))
        )
    if code >= 400:
        raise MediaRefused(f"{what} answered {code}{_provider_says(body)}")


async def get_json(
    http: httpx.AsyncClient,
    url: str,
    what: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A provider's JSON answer (Graph media lookup, Telegram getFile)."""
    try:
        resp = await http.get(url, headers=headers, params=params)
    except httpx.TimeoutException as exc:
        raise RetryLater(f"{what} timed out") from exc
    except httpx.TransportError as exc:
        raise RetryLater(f"{what} unreachable: {type(exc).__name__}") from exc
    _classify(resp, resp.content, what)
    try:
        value = orjson.loads(resp.content)
    except orjson.JSONDecodeError as exc:
        raise RetryLater(f"{what} answered with something other than JSON") from exc
    if not isinstance(value, dict):
        raise RetryLater(f"{what} answered with something other than a JSON object")
    return value


async def download(
    http: httpx.AsyncClient,
    url: str,
    what: str,
    max_bytes: int,
    *,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> tuple[bytes, str]:
    """(the file, its served content type): streamed, and refused as soon as it passes `max_bytes`.

    Redirects are followed (Twilio answers with one to its CDN); httpx drops the Authorization header
    when a redirect leaves the origin, so credentials only ever go where they were meant to."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise MediaRefused("the media URL is not an http(s) URL")
    try:
        async with http.stream("GET", url, headers=headers, auth=auth) as resp:
            if resp.status_code >= 400:
                _classify(resp, await resp.aread() if resp.status_code < 500 else b"", what)
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise MediaRefused(too_large(max_bytes))
            buf = bytearray()
            async for chunk in resp.aiter_bytes():
                buf += chunk
                if len(buf) > max_bytes:
                    raise MediaRefused(too_large(max_bytes))
            return bytes(buf), resp.headers.get("content-type", "")
    except httpx.TimeoutException as exc:
        raise RetryLater(f"{what} timed out") from exc
    except httpx.TransportError as exc:
        raise RetryLater(f"{what} unreachable: {type(exc).__name__}") from exc


def too_large(max_bytes: int) -> str:
    mb, rest = divmod(max_bytes, 1_048_576)
    return f"the file is larger than the {f'{mb} MB' if mb and not rest else f'{max_bytes:,}-byte'} limit"


def check_declared_size(value: Any, max_bytes: int) -> None:
    """A provider's announced size (Graph `file_size`, Telegram `file_size`): refused before downloading."""
    try:
        size = int(value)
    except (TypeError, ValueError):
        return
    if size > max_bytes:
        raise MediaRefused(too_large(max_bytes))


def matches_sha256(data: bytes, expected: Any) -> bool:
    """Meta gives the file's SHA-256 (hex from the media lookup, base64 in webhooks); absent = no check."""
    if not isinstance(expected, str) or not expected:
        return True
    digest = hashlib.sha256(data)
    return expected.lower() == digest.hexdigest() or expected == base64.b64encode(digest.digest()).decode()


# ---- what may be stored ------------------------------------------------------------------------------


def media_type(*candidates: Any, filename: str = "") -> str:
    """The first real content type of the candidates (declared by the webhook, then served), else one
    guessed from the file name; parameters dropped (`audio/ogg; codecs=opus` -> `audio/ogg`)."""
    for c in candidates:
        ctype = str(c or "").split(";")[0].strip().lower()
        if ctype not in _OCTET:
            return ctype
    return (
        (mimetypes.guess_type(filename)[0] or "application/octet-stream")
        if filename
        else "application/octet-stream"
    )


def safe_name(name: str, ctype: str, fallback: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1].split("?")[0][:200].strip()
    if not name:
        name = fallback
    if "." not in name:
        ext = mimetypes.guess_extension(ctype) or ""
        name += ext
    return name


def check_media(got: Download, max_bytes: int) -> str:
    """The content type to store the file under; `MediaRefused` for one that may not be stored."""
    if len(got.data) > max_bytes:
        raise MediaRefused(too_large(max_bytes))
    if not got.data:
        raise MediaRefused("the file is empty")
    ctype = media_type(got.content_type, filename=got.filename)
    if ctype not in ACCEPTED_TYPES:
        raise MediaRefused(f"files of type {ctype[:100]} are not accepted")
    magic = ALLOWED_TYPES.get(ctype)
    if magic and not any(got.data.startswith(m) for m in magic):
        raise MediaRefused("the file's content does not match its type")
    if ctype in _TEXT_TYPES:
        try:
            got.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MediaRefused("text files must be UTF-8") from exc
    return ctype


# ---- the job -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Loaded:
    account_id: int
    channel: str
    config: dict[str, Any]
    items: list[dict[str, Any]]


def _load(session: Session, message_id: int) -> _Loaded | None:
    m = session.get(Message, message_id)
    if m is None:
        return None
    inbox = session.get(Inbox, m.inbox_id)
    media = (m.meta or {}).get("media")
    if inbox is None or not isinstance(media, list):
        return None
    items = [i if isinstance(i, dict) else {} for i in media]
    return _Loaded(m.account_id, inbox.channel, dict(inbox.config or {}), items)


def _locked_message(session: Session, message_id: int) -> Message | None:
    # FOR UPDATE on PostgreSQL (two workers of one job take turns); SQLite has one writer anyway.
    return session.get(Message, message_id, with_for_update=True)


def _update_item(session: Session, m: Message, source: str, change: dict[str, Any]) -> bool:
    media = [dict(i) if isinstance(i, dict) else i for i in (m.meta or {}).get("media") or []]
    for item in media:
        if source_of(item) == source:
            if item.get("attachment_id") is not None:
                return False  # stored by an earlier run: never a second attachment
            item.update(change)
            for k in [k for k, v in change.items() if v is None]:
                del item[k]
            m.meta = {**m.meta, "media": media}
            session.flush()
            return True
    return False


def _attach(
    session: Session, message_id: int, source: str, filename: str, ctype: str, size: int, key: str
) -> bool:
    """The stored file becomes the item's attachment; False (and nothing written) if it already has one."""
    m = _locked_message(session, message_id)
    if m is None:
        return False
    media = (m.meta or {}).get("media") or []
    if not any(source_of(i) == source and i.get("attachment_id") is None for i in media):
        return False
    a = Attachment(
        account_id=m.account_id,
        message_id=m.id,
        filename=filename[:255],
        content_type=ctype[:127],
        size=size,
        storage_key=key,
    )
    session.add(a)
    session.flush()
    _update_item(
        session,
        m,
        source,
        {"status": "stored", "attachment_id": a.id, "error": None, "retryable": None},
    )
    emit_message_updated(session, m)
    return True


def _mark_failed(session: Session, message_id: int, failures: list[tuple[str, str, bool]]) -> None:
    """(source, reason, retryable) per item: shown to agents; the original URL or id stays."""
    m = _locked_message(session, message_id)
    if m is None:
        return
    changed = False
    for source, reason, retryable in failures:
        changed |= _update_item(
            session,
            m,
            source,
            {"status": "failed", "error": reason[:500], "retryable": True if retryable else None},
        )
    if changed:
        emit_message_updated(session, m)


def limits_of(services: Any) -> MediaLimits:
    """The size limit of files that come in (`CAREDESK_MAX_UPLOAD_BYTES`, also email's attachment limit),
    unless the services carry their own (`extras["channels.media"]`, for tests)."""
    extras = getattr(services, "extras", None) or {}
    limits = extras.get("channels.media")
    if isinstance(limits, MediaLimits):
        return limits
    return MediaLimits(max_bytes=int(services.settings.max_upload_bytes))


async def media_job(ctx: JobContext) -> None:
    message_id = int(ctx.job.payload["message_id"])
    loaded: _Loaded | None = await ctx.db.read(_load, message_id)
    if loaded is None:
        return
    fetch = fetchers().get(loaded.channel)
    if fetch is None:
        return
    limits = limits_of(ctx.services)
    storage = ctx.services.storage
    refused: list[tuple[str, str, bool]] = []
    transient: list[tuple[str, RetryLater]] = []
    seen = 0
    async with httpx.AsyncClient(timeout=limits.timeout_s, follow_redirects=True) as http:
        for item in loaded.items:
            source = source_of(item)
            if source is None:
                continue
            seen += 1
            if item.get("attachment_id") is not None:
                continue
            if item.get("status") == "failed" and not item.get("retryable"):
                continue
            if seen > MAX_ITEMS:
                refused.append((source, f"more than {MAX_ITEMS} files in one message", False))
                continue
            try:
                got = await fetch(http, item, loaded.config, limits.max_bytes)
                ctype = check_media(got, limits.max_bytes)
            except MediaRefused as exc:
                log.info("media of message %s not fetched: %s", message_id, exc)
                refused.append((source, str(exc), False))
                continue
            except RetryLater as exc:
                transient.append((source, exc))
                continue
            key = await asyncio.to_thread(storage.put, loaded.account_id, got.filename, got.data)
            try:
                kept = await ctx.db.write(
                    _attach, message_id, source, got.filename, ctype, len(got.data), key
                )
            except BaseException:
                await asyncio.to_thread(storage.delete, key)
                raise
            if not kept:
                await asyncio.to_thread(storage.delete, key)
    if not transient:
        if refused:
            await ctx.db.write(_mark_failed, message_id, refused)
        return
    reason = "; ".join(sorted({str(exc) for _, exc in transient}))
    if ctx.job.attempts >= ctx.job.max_attempts:
        given_up = f"gave up after {ctx.job.attempts} attempts: {reason}"
        refused += [(source, given_up, True) for source, _ in transient]
    if refused:
        await ctx.db.write(_mark_failed, message_id, refused)
    afters = [exc.after for _, exc in transient if exc.after is not None]
    raise RetryLater(reason, after=max(afters) if afters else None)
