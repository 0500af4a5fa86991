"""The email parser's shortcuts give exactly what the standard library and quotequail give:
headers read as text without the structured parse, and quotequail skipped when nothing could match."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

import quotequail
from hypothesis import given, settings
from hypothesis import strategies as st

from caredesk.channels.email.parse import POLICY, _content, automated, quote_blocks

LINES = [
    "Hello, my order TH-1 never arrived.",
    "",
    "On Mon, 3 Nov 2025 at 10:00, Support <help@shop.test> wrote:",
    "On Mon, 3 Nov 2025 at 10:00, Support",
    "<help@shop.test> wrote:",
    "> quoted line",
    ">",
    "-----Original Message-----",
    "From: Support <help@shop.test>",
    "Sent: Monday, November 3, 2025 10:00 AM",
    "To: Ann <ann@example.com>",
    "Subject: RE: order",
    "Am 03.11.2025 um 10:00 schrieb Support <help@shop.test>:",
    "Begin forwarded message:",
    "---------- Forwarded message ---------",
    "-- ",
    "Thanks, Ann",
    "Le lun. 3 nov. 2025 à 10:00, Support a écrit :",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(LINES), st.text(max_size=60)), max_size=25))
def test_quote_blocks_equals_quotequail(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert quote_blocks(text) == quotequail.quote(text)


def test_quote_blocks_finds_the_history_of_a_reply() -> None:
    text = "Still waiting.\n\nOn Mon, 3 Nov 2025, Support <help@shop.test> wrote:\n> Your parcel left.\n"
    assert quote_blocks(text) == quotequail.quote(text)
    assert quote_blocks(text)[0] == (
        True,
        "Still waiting.\n\nOn Mon, 3 Nov 2025, Support <help@shop.test> wrote:",
    )


NAMES = st.sampled_from(["", "Ann", "Doe, John", "Jürgen", "O'Neil", '"quoted"', "=?utf-8?q?J=C3=BCrgen?="])
ADDRS = st.sampled_from(["ann@example.com", "John.Doe@Example.com", "x+tag@y.z", "reply+abc123@shop.test"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAMES, ADDRS), min_size=1, max_size=3), st.booleans())
def test_address_headers_read_as_text_give_the_same_addresses(
    pairs: list[tuple[str, str]], fold: bool
) -> None:
    def fmt(name: str, addr: str) -> str:
        if not name:
            return addr
        if name.startswith("=?"):
            return f"{name} <{addr}>"
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{addr}>'

    sep = ",\r\n " if fold else ", "
    to = sep.join(fmt(n, a) for n, a in pairs)
    raw = (
        f"From: {fmt(*pairs[0])}\r\nTo: {to}\r\nMessage-ID: <m1@x>\r\nReferences: <a@b>{sep}<c@d>\r\n"
        "Subject: hi\r\n\r\nbody\r\n"
    ).encode()
    std = BytesParser(policy=policy.default).parsebytes(raw)
    ours = BytesParser(policy=POLICY).parsebytes(raw)
    assert parseaddr(str(ours["From"])) == parseaddr(str(std["From"]))
    assert getaddresses([str(ours["To"])]) == getaddresses([str(std["To"])])
    assert str(ours["Message-ID"]) == str(std["Message-ID"])
    assert str(ours["References"]).split() == str(std["References"]).split()


def _content_as_before(part: EmailMessage) -> str:
    """What `_content` gave before its ASCII shortcut."""
    try:
        return str(part.get_content())
    except Exception:
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            return ""
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


CHARSETS = st.sampled_from(
    [
        "us-ascii",
        "UTF-8",
        "utf-8",
        "iso-8859-1",
        "windows-1252",
        "utf-16",
        "utf-7",
        "x-unknown",
        "utf_8",
        None,
    ]
)
CTES = st.sampled_from(["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "BASE64", None])
BODIES = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=127, blacklist_characters="\r"), max_size=80),
    st.text(max_size=40),
    st.sampled_from(["SGVsbG8=\n", "=C3=BCber\n", "+AGEAYgBj-\n", "caf\u00e9\n", "plain words\n"]),
)


@settings(max_examples=400, deadline=None)
@given(CHARSETS, CTES, BODIES, st.sampled_from(["text/plain", "text/html", "application/octet-stream"]))
def test_text_content_shortcut_gives_what_the_content_manager_gives(
    charset: str | None, cte: str | None, body: str, ctype: str
) -> None:
    head = f"From: a@b.c\r\nContent-Type: {ctype}" + (f"; charset={charset}" if charset else "") + "\r\n"
    head += f"Content-Transfer-Encoding: {cte}\r\n" if cte else ""
    raw = head.encode() + b"\r\n" + body.replace("\n", "\r\n").encode("utf-8", errors="surrogateescape")
    msg = BytesParser(policy=POLICY).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    assert _content(msg) == _content_as_before(msg)


def _automated_as_before(msg: EmailMessage, sender: str) -> dict[str, str] | None:
    """`automated` before its early exit for mails without any machine sign."""
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


MACHINE_HEADERS = st.lists(
    st.sampled_from(
        [
            "Auto-Submitted: auto-replied",
            "Auto-Submitted: no",
            "AUTO-SUBMITTED: auto-generated",
            "X-Autoreply: yes",
            "X-Autorespond: 1",
            "X-Auto-Reply: true",
            "Precedence: bulk",
            "Precedence: junk",
            "precedence: first-class",
            "List-Id: <news.shop.test>",
            "List-Unsubscribe: <mailto:u@shop.test>",
            "Content-Type: multipart/report; report-type=delivery-status; boundary=x",
            "Content-Type: multipart/report; boundary=x",
            "Content-Type: text/plain",
            "X-Mailer: Thunderbird",
        ]
    ),
    max_size=4,
)
SENDERS = st.sampled_from(
    [
        "ann@example.com",
        "mailer-daemon@mx.test",
        "postmaster@mx.test",
        "noreply@shop.test",
        "no-reply@x.y",
        "x@y.z",
    ]
)


@settings(max_examples=400, deadline=None)
@given(MACHINE_HEADERS, SENDERS)
def test_machine_detection_unchanged_by_its_early_exit(headers: list[str], sender: str) -> None:
    raw = (f"From: {sender}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\nbody\r\n").encode()
    msg = BytesParser(policy=POLICY).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    assert automated(msg, sender) == _automated_as_before(msg, sender)
