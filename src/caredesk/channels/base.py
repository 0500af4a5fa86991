"""The shape every channel adapter has, and the one ingest path they all share.

A provider request goes: `verify(raw request)` (signature on the raw bytes; raises `Rejected`) ->
`parse(raw request)` (raises `Malformed`) -> a `Parsed` batch of inbound messages and delivery
statuses -> `ingest` writes the whole batch in ONE transaction through `receive_inbound` and
`mark_delivery`. The webhook answers 2xx only after that write returned, i.e. after COMMIT.
A rejected request writes nothing; a malformed one is kept (`record_malformed`) and answered 400.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.models import Inbox
from caredesk.conversations.actions import mark_delivery
from caredesk.conversations.inbound import Inbound, InboundResult, receive_inbound
from caredesk.platform.db import SQL, raw
from caredesk.platform.jobs import PermanentFailure, RetryLater, enqueue
from caredesk.platform.models import utcnow


@dataclass(frozen=True, slots=True)
class InboxInfo:
    """What an adapter needs to know about the inbox a request was addressed to."""

    id: int
    account_id: int
    channel: str
    public_token: str
    config: dict[str, Any]
    name: str = ""


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A provider's request exactly as received: signatures are checked on these bytes."""

    method: str
    url: str  # the URL the provider called (public URL + path + query), used by URL-signing schemes
    headers: dict[str, str]  # lower-cased names
    body: bytes
    query: dict[str, str] = field(default_factory=dict)
    alt_urls: tuple[str, ...] = ()  # other spellings of the URL (the Host the request came in on)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class Rejected(Exception):
    """Signature missing, wrong or stale: answered 401/403, nothing written."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Malformed(Exception):
    """The body is not what the provider sends: answered 400 and kept for inspection."""


@dataclass(slots=True)
class StatusUpdate:
    """A provider's delivery status for a message we sent (matched by its provider id)."""

    channel_message_id: str
    status: str  # queued | sent | delivered | read | failed
    error: str | None = None


@dataclass(slots=True)
class Parsed:
    inbound: list[Inbound] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    # A per-delivery id the provider repeats on redelivery (Telegram update_id, webhook-id).
    delivery_id: str | None = None


@dataclass(slots=True)
class IngestResult:
    results: list[InboundResult] = field(default_factory=list)
    statuses_applied: int = 0
    replayed: bool = False


MAX_CHANNEL_ID = 500  # messages.channel_message_id
MAX_IDENTITY = 320  # identities.value


def _clean(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a stray one in a customer's text is not worth refusing the message.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def check_inbound(msg: Inbound) -> Inbound:
    """What every adapter's output must satisfy to be stored on any database; `Malformed` otherwise.

    Provider ids and addresses longer than their columns are refused (SQLite would store them, PostgreSQL
    would fail with a 500); NUL characters become U+FFFD."""
    if msg.channel_message_id is not None:
        msg.channel_message_id = _clean(msg.channel_message_id)
        if len(msg.channel_message_id) > MAX_CHANNEL_ID:
            raise Malformed(f"the message id is longer than {MAX_CHANNEL_ID} characters")
    msg.identity_value = _clean(msg.identity_value)
    if not msg.identity_value or len(msg.identity_value) > MAX_IDENTITY:
        raise Malformed(f"the sender's address must be 1-{MAX_IDENTITY} characters")
    msg.text = _clean(msg.text)
    msg.subject = _clean(msg.subject)
    msg.raw_content_type = _clean(msg.raw_content_type)
    if msg.html is not None:
        msg.html = _clean(msg.html)
    if msg.contact_name is not None:
        msg.contact_name = _clean(msg.contact_name)
    if msg.raw_body is not None:
        msg.raw_body = _clean(msg.raw_body)
    if msg.conversation_token is not None:
        msg.conversation_token = _clean(msg.conversation_token)
    msg.reply_to_ids = [_clean(r) for r in msg.reply_to_ids if len(r) <= MAX_CHANNEL_ID]
    return msg


def checked(parsed: Parsed) -> Parsed:
    """`check_inbound` on every message of a provider delivery, and NUL-free statuses."""
    for msg in parsed.inbound:
        check_inbound(msg)
    for st in parsed.statuses:
        st.channel_message_id = _clean(st.channel_message_id)
        if st.error is not None:
            st.error = _clean(st.error)
    if parsed.delivery_id is not None:
        parsed.delivery_id = _clean(parsed.delivery_id)
    return parsed


class ChannelAdapter(Protocol):
    """One provider's webhook format. Pure functions of the request: no I/O, no database."""

    @property
    def channels(self) -> tuple[str, ...]:
        """The inbox channels this adapter serves (Inbox.channel values)."""
        ...

    def verify(self, inbox: InboxInfo, req: WebhookRequest) -> None: ...

    def parse(self, inbox: InboxInfo, req: WebhookRequest) -> Parsed: ...


# Precompiled: these run on every provider request (see caredesk.platform.db.SQL).
_RECEIPT = SQL(
    "INSERT INTO channel_webhook_receipts (inbox_id, delivery_id, received_at) VALUES (:inbox, :delivery, :now) "
    "ON CONFLICT (inbox_id, delivery_id) DO NOTHING RETURNING id"
)
_MESSAGE_BY_CHANNEL_ID = SQL("SELECT id FROM messages WHERE inbox_id = :inbox AND channel_message_id = :cmid")


def ingest(session: Session, inbox_id: int, account_id: int, parsed: Parsed) -> IngestResult:
    """Write one provider delivery: every message and status in it, or nothing (one transaction)."""
    out = IngestResult()
    r = raw(session)
    if parsed.delivery_id is not None:
        row = r.one(
            _RECEIPT,
            {"inbox": inbox_id, "delivery": parsed.delivery_id[:200], "now": r.ts(utcnow())},
        )
        if row is None:
            out.replayed = True
            return out
    for msg in parsed.inbound:
        res = receive_inbound(session, msg)
        out.results.append(res)
        if msg.meta.get("media") and not res.duplicate and fetchable(msg.meta["media"]):
            enqueue_media(session, account_id, res.message_id)
    for st in parsed.statuses:
        found = r.one(_MESSAGE_BY_CHANNEL_ID, {"inbox": inbox_id, "cmid": st.channel_message_id})
        mid = None if found is None else found[0]
        if (
            mid is not None
            and mark_delivery(session, account_id, int(mid), st.status, error=st.error) is not None
        ):
            out.statuses_applied += 1
    return out


MEDIA_JOB = "message.media"  # caredesk.channels.media


def fetchable(media: Any) -> bool:
    """Whether a message's `meta.media` names a file at its provider (a URL, a media id or a file id);
    Messenger's fallback/location attachments, for one, carry none."""
    return isinstance(media, list) and any(
        isinstance(i, dict) and any(isinstance(i.get(k), str) and i[k] for k in ("url", "id", "file_id"))
        for i in media
    )


def enqueue_media(session: Session, account_id: int, message_id: int) -> None:
    """The download of a message's provider media, in the transaction that stores the message (no network
    I/O on the webhook's path); one job per message, whatever the redeliveries."""
    enqueue(session, MEDIA_JOB, {"message_id": message_id}, account_id=account_id, key=f"media:{message_id}")


def inbox_info(inbox: Inbox) -> InboxInfo:
    return InboxInfo(
        inbox.id, inbox.account_id, inbox.channel, inbox.public_token, dict(inbox.config), inbox.name
    )


def load_inbox_by_token(session: Session, token: str) -> InboxInfo | None:
    inbox = session.execute(select(Inbox).where(Inbox.public_token == token)).scalar_one_or_none()
    return None if inbox is None else inbox_info(inbox)


# ---- outbound helpers shared by the senders -------------------------------------------------------


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` in seconds: delay-seconds or an HTTP-date (RFC 9110); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP-date is always GMT; a zoneless date is not one
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def provider_call(method: str, url: str, *, timeout_s: float = 15.0, **kwargs: Any) -> httpx.Response:
    """One HTTP call to a provider, with its failure classified for the job system.

    Timeouts, connection errors, 429 and 5xx -> `RetryLater` (Retry-After honoured);
    other 4xx -> `PermanentFailure` (retrying a refused request never helps).
    """
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            resp = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise RetryLater(f"provider timed out: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise RetryLater(f"provider unreachable: {type(exc).__name__}") from exc
    if resp.status_code == 429 or resp.status_code >= 500:
        raise RetryLater(
            f"provider answered {resp.status_code}",
            after=retry_after_seconds(resp.headers.get("retry-after")),
        )
    if resp.status_code >= 400:
        raise PermanentFailure(f"provider refused the message ({resp.status_code}): {resp.text[:300]}")
    return resp


class RateLimit:
    """Per-channel send rate (a token bucket per key): waits briefly, or asks the job to come back later."""

    def __init__(self, per_second: float, burst: int | None = None) -> None:
        self.rate = per_second
        self.burst = float(burst if burst is not None else max(1, int(per_second)))
        self.buckets: dict[str, tuple[float, float]] = {}

    def _take(self, key: str) -> float:
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            return 0.0
        self.buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    async def acquire(self, key: str, max_wait: float = 2.0) -> None:
        wait = self._take(key)
        if wait <= 0:
            return
        if wait > max_wait:
            raise RetryLater("channel rate limit reached", after=wait)
        await asyncio.sleep(wait)
        await self.acquire(key, max_wait)


class CallbackUrls:
    """Our own webhook URL for an inbox, for providers that take a status-callback URL per send."""

    def __init__(self, db: Any, public_url: str) -> None:
        self.db = db
        self.public_url = public_url.rstrip("/")
        self._tokens: dict[int, str] = {}

    async def url(self, segment: str, inbox_id: int) -> str | None:
        token = self._tokens.get(inbox_id)
        if token is None:
            token = await self.db.read(_inbox_token, inbox_id)
            if token is None:
                return None
            self._tokens[inbox_id] = token
        return f"{self.public_url}/webhooks/{segment}/{token}"


def _inbox_token(session: Session, inbox_id: int) -> str | None:
    inbox = session.get(Inbox, inbox_id)
    return None if inbox is None else inbox.public_token


# ---- credentials never in logs ---------------------------------------------------------------------------

_SECRETS_IN_URLS = (
    (re.compile(r"/bot\d+:[A-Za-z0-9_-]+"), "/bot<redacted>"),  # Telegram: the token is in the path
    (re.compile(r"((?:access_token|token|key|signature|sig)=)[^&\s\"']+", re.I), r"\1<redacted>"),
    (re.compile(r"(https?://)[^/@\s]+@"), r"\1<redacted>@"),  # user:password@host
)


def redact(text: str) -> str:
    """`text` with the provider secrets that URLs can carry replaced by `<redacted>`."""
    for pattern, repl in _SECRETS_IN_URLS:
        text = pattern.sub(repl, text)
    return text


class RedactSecrets(logging.Filter):
    """httpx logs every request's URL at INFO: Telegram's bot token is in the path, Messenger's page token in
    the query. This filter rewrites such records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_http_logs() -> None:
    """Installs `RedactSecrets` on the logger of the HTTP client the channels use (once)."""
    logger = logging.getLogger("httpx")  # httpcore's own records name hosts, never paths or headers
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
