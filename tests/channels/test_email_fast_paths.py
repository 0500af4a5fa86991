"""The email parser's shortcuts give exactly what the standard library and quotequail give:
headers read as text without the structured parse, and quotequail skipped when nothing could match."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

import quotequail
from hypothesis import given, settings
from hypothesis import strategies as st

from caredesk.channels.email.parse import POLICY, quote_blocks

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
