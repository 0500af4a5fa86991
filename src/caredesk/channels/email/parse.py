"""Turning one RFC 5322 message into an `Inbound`: identity, threading, visible text, HTML, attachments,
and the flags that keep automation from ever answering a machine (auto-replies, bounces, lists)."""

from __future__ import annotations

import functools
import hashlib
import html as htmllib
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from typing import Any

import nh3
import quotequail
from quotequail import _internal as _qq_internal
from quotequail import _patterns as _qq_patterns
from quotequail._enums import Position as _QQPosition

from caredesk.channels.base import InboxInfo, Malformed, check_inbound
from caredesk.contacts.identities import normalize_email
from caredesk.conversations.inbound import Inbound, InboundAttachment
from caredesk.platform.errors import Invalid
from caredesk.platform.storage import Storage

REPLY_TOKEN = re.compile(r"reply\+([A-Za-z0-9_-]{8,64})@", re.IGNORECASE)
MSGID = re.compile(r"<([^<>\s]{1,400})>")
SUBJECT_PREFIX = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|antw|rif|tr|odp|r)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
MAX_ATTACHMENT = 20 * 1024 * 1024
MAX_ATTACHMENTS = 20

# Where quoted history starts, in the shapes real clients write it.
_HISTORY = [
    re.compile(r"^\s*On .{1,300}wrote:\s*$", re.MULTILINE | re.DOTALL),  # Gmail, Apple Mail (may wrap)
    re.compile(r"^\s*Am .{1,300}schrieb .{0,200}:\s*$", re.MULTILINE),  # German clients
    re.compile(r"^-{2,}\s*Original Message\s*-{2,}\s*$", re.MULTILINE | re.IGNORECASE),
    re.compile(r"^_{10,}\s*$", re.MULTILINE),  # Outlook's separator line
    re.compile(r"^\*?From:\*? .+\n\*?(Sent|Date):\*? .+$", re.MULTILINE),  # Outlook header block
    re.compile(r"^\*?Von:\*? .+\n\*?(Gesendet|Datum):\*? .+$", re.MULTILINE),
]
_SIGNATURE = [
    re.compile(r"^-- ?$", re.MULTILINE),  # the RFC 3676 delimiter
    re.compile(
        r"^(Sent from my (iPhone|iPad|Android|mobile)|Get Outlook for (iOS|Android)).*$",
        re.MULTILINE | re.IGNORECASE,
    ),
]

ALLOWED_TAGS = {
    "a",
    "b",
    "i",
    "u",
    "em",
    "strong",
    "p",
    "br",
    "div",
    "span",
    "ul",
    "ol",
    "li",
    "blockquote",
    "pre",
    "code",
    "h1",
    "h2",
    "h3",
    "h4",
    "table",
    "thead",
    "tbody",
    "tr",
    "td",
    "th",
    "hr",
    "img",
    "sup",
    "sub",
}


def normalize_subject(subject: str) -> str:
    return SUBJECT_PREFIX.sub("", subject or "").strip()


def is_reply_subject(subject: str) -> bool:
    return bool(SUBJECT_PREFIX.match(subject or ""))


def message_ids(value: str | None) -> list[str]:
    return MSGID.findall(value or "")


# quotequail tries each of its ~40 patterns on each line (and each line joined with the next) in Python:
# most of an ordinary mail's parse time. One alternation of the same patterns answers "could any of them
# match here?" in one call; only when one could does quotequail run, so its answer is unchanged.
_ANY_QUOTE_PATTERN = re.compile(
    "|".join(f"(?:{r.pattern})" for rs in _qq_patterns.COMPILED_PATTERN_MAP.values() for r in rs)
)
_QUOTE_LIMIT = 1000  # quotequail.quote's default line limit
_QQ_END = _QQPosition.End  # quotequail.quote's default: the quote starts after the intro line


def _first_quote_line(lines: list[str]) -> int | None:
    """The first line at which any of quotequail's patterns matches (alone or joined with the next lines,
    as quotequail joins them), or None."""
    for n in range(len(lines)):
        for m in range(_qq_patterns.MAX_WRAP_LINES):
            line = _qq_internal.join_wrapped_lines(lines[n : n + 1 + m])
            if line.startswith(">"):
                line = line[1:].strip()
            if not line:
                break
            if _ANY_QUOTE_PATTERN.match(line.strip()):
                return n
    return None


def quote_blocks(text: str) -> list[tuple[bool, str]]:
    """`quotequail.quote(text)`, at a fraction of its cost.

    quotequail tries every pattern on every line, in Python, until one matches. The combined pattern finds
    that line in one call per line; quotequail's own matcher then runs on that line alone, to say where
    the intro ends exactly as it would (which pattern matched first decides how many lines it spans).
    """
    lines = text.split("\n")
    if len(lines) >= _QUOTE_LIMIT:
        blocks: list[tuple[bool, str]] = quotequail.quote(text)
        return blocks
    first = _first_quote_line(lines)
    if first is None:
        return [(True, text)]
    hit = _qq_internal.find_pattern_on_line(lines, first, _qq_patterns.MAX_WRAP_LINES, _QQ_END)
    if hit is None:  # cannot happen (same patterns, same lines); quotequail itself decides if it does
        blocks = quotequail.quote(text)
        return blocks
    split = hit[0] + 1
    return [(True, "\n".join(lines[:split])), (False, "\n".join(lines[split:]))]


def visible_text(text: str) -> str:
    """The new part of a reply: quoted history and signature removed (the original is kept elsewhere)."""
    blocks = quote_blocks(text)
    top = "".join(t for visible, t in blocks[:1] if visible) if blocks else text
    cut = len(top)
    for pattern in (*_HISTORY, *_SIGNATURE):
        m = pattern.search(top)
        if m and m.start() < cut and top[: m.start()].strip():
            cut = m.start()
    return top[:cut].strip()


def html_to_text(html: str) -> str:
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>|</tr>|</h\d>", "\n", html)
    text = nh3.clean(text, tags=set())
    return re.sub(r"\n{3,}", "\n\n", htmllib.unescape(text)).strip()


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer",
    )


def automated(msg: EmailMessage, sender: str) -> dict[str, str] | None:
    """Why this mail came from a machine, or None. Such mails are stored but never answered automatically."""
    present = {name.lower() for name in msg}  # iterating a message gives its header names
    if (
        not present & _MACHINE_HEADERS
        and sender.split("@", 1)[0] not in _MACHINE_SENDERS
        and msg.get_content_type() != "multipart/report"
    ):
        return None  # none of the signs below can be there
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return {"kind": "auto_reply", "reason": f"Auto-Submitted: {auto}"}
    local = sender.split("@", 1)[0]
    ctype = msg.get_content_type()
    if local in ("mailer-daemon", "postmaster") or (
        ctype == "multipart/report" and "delivery-status" in str(msg.get("Content-Type", ""))
    ):
        return {"kind": "bounce", "reason": "delivery status notification"}
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply"):
        if msg.get(header):
            return {"kind": "auto_reply", "reason": header}
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return {
            "kind": "list" if precedence in ("bulk", "list") else "auto_reply",
            "reason": f"Precedence: {precedence}",
        }
    if msg.get("List-Id") or msg.get("List-Unsubscribe"):
        return {"kind": "list", "reason": "mailing list (List-Id)"}
    if local in ("noreply", "no-reply", "donotreply", "do-not-reply"):
        return {"kind": "auto_reply", "reason": "no-reply sender"}
    return None


# Charsets in which ASCII bytes decode to the same characters: an ASCII payload in one of them is its own text.
_ASCII_SUPERSETS = frozenset(
    {
        "us-ascii",
        "ascii",
        "utf-8",
        "utf8",
        "iso-8859-1",
        "latin-1",
        "latin1",
        "iso-8859-15",
        "windows-1252",
        "cp1252",
    }
)
_IDENTITY_CTE = frozenset({"", "7bit", "8bit", "binary"})


# What `automated` looks at: without any of these headers and senders, only a multipart/report could be a bounce.
_MACHINE_HEADERS = frozenset(
    {
        "auto-submitted",
        "x-autoreply",
        "x-autorespond",
        "x-auto-reply",
        "precedence",
        "list-id",
        "list-unsubscribe",
    }
)
_MACHINE_SENDERS = frozenset(
    {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply"}
)


@functools.lru_cache(maxsize=4096)
def _parseaddr(value: str) -> tuple[str, str]:
    """`email.utils.parseaddr`, remembered: the same senders write again and again."""
    return parseaddr(value)


@functools.lru_cache(maxsize=1024)
def _getaddresses(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`email.utils.getaddresses`, remembered: a support inbox sees the same recipient headers all day."""
    return tuple(getaddresses(list(values)))


def _content(part: EmailMessage) -> str:
    """`part.get_content()` (text), or what can be decoded of it."""
    if part.get_content_maintype() == "text" and not part.is_multipart():
        # The standard library encodes the payload to bytes and decodes them with the charset: for an ASCII
        # payload without a transfer encoding, in an ASCII-compatible charset, that gives the payload back.
        payload = part.get_payload()
        charset = part.get_param("charset", "ASCII")
        if (
            isinstance(payload, str)
            and payload.isascii()
            and isinstance(charset, str)
            and charset.lower() in _ASCII_SUPERSETS
            and str(part.get("Content-Transfer-Encoding", "")).strip().lower() in _IDENTITY_CTE
        ):
            return payload
    try:
        return str(part.get_content())
    except Exception:  # unknown or broken charsets (LookupError, ValueError on NUL, ...)
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # a part that cannot be decoded at all shows as empty
            return ""
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


@functools.lru_cache(maxsize=4096)
def _parsed_header(name: str, value: str) -> Any:
    return policy.default.header_fetch_parse(name, value)


class _CachingPolicy(policy.EmailPolicy):
    """`policy.default`, remembering parsed headers: the standard library parses a header again on every
    read (`get_content_type()` alone reads Content-Type several times per part), which was half of the
    SMTP server's time. Parsed headers are immutable strings, so sharing them is safe."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if type(value) is str and len(value) <= 998:  # one RFC 5322 line; a folded giant is parsed plainly
            if name.lower() in _READ_AS_TEXT and value.isascii() and "=?" not in value:
                # Only ever read as text here (then `parseaddr`/`getaddresses`/a Message-ID regex, which are
                # made for raw header values); the structured parse of an address cost ~0.3 ms a header.
                return _UNFOLD.sub("", value).rstrip("\r\n")
            return _parsed_header(name, value)
        return super().header_fetch_parse(name, value)


# Headers this module reads only as text. Encoded words (=?...?=) and non-ASCII still take the full parse.
_READ_AS_TEXT = frozenset(
    {"from", "to", "cc", "delivered-to", "x-original-to", "message-id", "in-reply-to", "references"}
)
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")


POLICY = _CachingPolicy()


def parse_message(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=POLICY).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def parse_email(
    inbox: InboxInfo, raw: bytes, storage: Storage | None, envelope_rcpts: list[str] | None = None
) -> Inbound:
    try:
        msg = parse_message(raw)
        name, addr = _parseaddr(str(msg.get("From", "")))
    except Exception as exc:
        raise Malformed(f"not a parseable email: {type(exc).__name__}") from exc
    try:
        sender = normalize_email(addr)
    except Invalid as exc:
        raise Malformed("the From address is missing or invalid") from exc
    mids = message_ids(str(msg.get("Message-ID", "")))
    # No Message-ID (rare, but real): the content's digest is stable across redeliveries of the same mail.
    message_id = mids[0] if mids else "sha256:" + hashlib.sha256(raw).hexdigest()
    subject = str(msg.get("Subject", "") or "")
    refs = (
        message_ids(str(msg.get("References", ""))) + message_ids(str(msg.get("In-Reply-To", "")))
        if "references" in msg or "in-reply-to" in msg
        else []
    )
    token = None
    present = {h.lower() for h in msg}
    addresses = [
        a
        for _n, a in _getaddresses(
            tuple(
                str(msg.get(h, "")) if h.lower() in present else ""
                for h in ("To", "Cc", "Delivered-To", "X-Original-To")
            )
        )
    ]
    for candidate in [*(envelope_rcpts or []), *addresses]:
        m = REPLY_TOKEN.search(candidate)
        if m:
            token = m.group(1)
            break
    plain_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    html_raw = _content(html_part) if isinstance(html_part, EmailMessage) else None
    text = (
        _content(plain_part)
        if isinstance(plain_part, EmailMessage)
        else (html_to_text(html_raw) if html_raw else "")
    )
    text = text.replace("\r\n", "\n")
    shown = visible_text(text) or text.strip()
    meta: dict[str, Any] = {
        "provider": "email",
        "email": {"message_id": message_id, "subject": subject, "to": addresses[:20]},
    }
    if shown != text.strip():
        meta["full_text"] = text[:200_000]
    robot = automated(msg, sender)
    if robot is not None:
        meta["automated"] = robot
        meta["no_auto_reply"] = True
    attachments = _attachments(inbox, msg, storage)
    inbound = Inbound(
        account_id=inbox.account_id,
        inbox_id=inbox.id,
        identity_kind="email",
        identity_value=sender,
        text=shown or ("[attachment]" if attachments else "[empty message]"),
        channel_message_id=message_id,
        contact_name=name or None,
        html=sanitize_html(html_raw) if html_raw else None,
        subject=normalize_subject(subject) or subject,
        meta=meta,
        attachments=attachments,
        conversation_token=token,
        reply_to_ids=refs[-20:],
        new_thread=True,  # without a reply address or known reference, a mail opens its own conversation
        raw_body=raw.decode("utf-8", errors="replace")[:2_000_000],
        raw_content_type="message/rfc822",
    )
    return check_inbound(inbound)


def _attachments(inbox: InboxInfo, msg: EmailMessage, storage: Storage | None) -> list[InboundAttachment]:
    out: list[InboundAttachment] = []
    if storage is None:
        return out
    for part in msg.iter_attachments():
        if len(out) >= MAX_ATTACHMENTS or not isinstance(part, EmailMessage):
            break
        try:
            data = part.get_payload(decode=True)
        except Exception:  # noqa: S112 - one broken part must not lose the mail
            continue
        if not isinstance(data, bytes) or len(data) > MAX_ATTACHMENT:
            continue
        filename = part.get_filename() or "attachment"
        key = storage.put(inbox.account_id, filename, data)
        out.append(
            InboundAttachment(
                filename=filename, content_type=part.get_content_type(), size=len(data), storage_key=key
            )
        )
    return out
