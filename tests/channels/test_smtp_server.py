"""The built-in SMTP server's own protocol work: PIPELINING (RFC 2920) with replies to a group sent
together, and the fast reading of plain addresses, which must give what aiosmtpd's parser gives."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from caredesk.channels.email import server as smtp_server
from caredesk.channels.email.server import CaredeskSMTP
from caredesk.services import Services
from tests.channels.helpers import counts, make_inbox, messages
from tests.conftest import AccountFixture, free_port

ATEXT = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=6)
ATOM = st.one_of(ATEXT, st.sampled_from(["", ".", "..", '"q"', "a b", "(c)", "[1.2.3.4]", "é", "@"]))
REST = st.sampled_from(
    ["", " SIZE=100", "  BODY=8BITMIME SIZE=5", " (comment) SIZE=1", "x", " \tSIZE=1", " "]
)


class _Bare(CaredeskSMTP):
    def __init__(self) -> None:  # only what `_getaddr` reads
        self.local_part_limit = 0


def _outcome(getaddr: Any, arg: str) -> object:
    try:
        return getaddr(arg)
    except Exception as exc:  # aiosmtpd's parser raises IndexError on "@" (answered 500 by the server)
        return type(exc)


@settings(max_examples=500, deadline=None)
@given(st.lists(ATOM, min_size=1, max_size=3), st.lists(ATOM, min_size=1, max_size=3), REST, st.booleans())
def test_plain_addresses_read_fast_give_what_the_parser_gives(
    local: list[str], domain: list[str], rest: str, angle: bool
) -> None:
    address = ".".join(local) + "@" + ".".join(domain)
    arg = f"<{address}>{rest}" if angle else address + rest
    assert _outcome(_Bare()._getaddr, arg) == _outcome(lambda a: SMTP._getaddr(_Bare(), a), arg), arg


def test_local_part_limit_still_applies_on_the_fast_path() -> None:
    server = _Bare()
    server.local_part_limit = 64
    assert server._getaddr("<" + "a" * 65 + "@shop.test>") == (None, None)
    assert server._getaddr("<" + "a" * 64 + "@shop.test> SIZE=9") == ("a" * 64 + "@shop.test", "SIZE=9")


def _mail(i: int) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = f"c{i}@customers.test", "support@shop.test", f"Question {i}"
    m["Message-ID"] = f"<pipe-{i}@customers.test>"
    m.set_content(f"Question number {i}\n")
    return m.as_bytes().replace(b"\n", b"\r\n")


async def _read_replies(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    """The next n complete replies (a multi-line reply counts once), each as its list of lines joined."""
    out: list[bytes] = []
    current = b""
    while len(out) < n:
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line, f"connection closed after {out!r}"
        current += line
        if line[3:4] != b"-":
            out.append(current)
            current = b""
    return out


async def test_pipelined_groups_are_answered_in_order_and_stored(
    services: Services, account: AccountFixture
) -> None:
    inbox_id, _ = make_inbox(services, account.id, "email", {"address": "support@shop.test"})
    port = free_port()
    server = await smtp_server.start(services, "127.0.0.1", port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await _read_replies(reader, 1))[0].startswith(b"220")
        writer.write(b"EHLO client.test\r\n")
        [ehlo] = await _read_replies(reader, 1)
        assert b"250-PIPELINING\r\n" in ehlo and ehlo.endswith(b"250 HELP\r\n")
        # Two mails, each as one group: MAIL, two RCPTs (one unknown), DATA in a single write.
        for i in range(2):
            writer.write(
                f"MAIL FROM:<c{i}@customers.test> SIZE=300\r\n".encode()
                + b"RCPT TO:<support@shop.test>\r\nRCPT TO:<nobody@shop.test>\r\nDATA\r\n"
            )
            mail, rcpt, unknown, data = await _read_replies(reader, 4)
            assert mail.startswith(b"250") and rcpt.startswith(b"250")
            assert unknown.startswith(b"550") and data.startswith(b"354")
            writer.write(_mail(i) + b".\r\n")
            [done] = await _read_replies(reader, 1)
            assert done.startswith(b"250 2.0.0"), done
        # The end of the data, the next group and QUIT in one write: every reply comes, in order.
        writer.write(b"MAIL FROM:<c2@customers.test>\r\nRCPT TO:<support@shop.test>\r\nDATA\r\n")
        assert [r[:3] for r in await _read_replies(reader, 3)] == [b"250", b"250", b"354"]
        writer.write(_mail(2) + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        replies = await _read_replies(reader, 4)
        assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"221"]
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert counts(services, inbox_id)["messages"] == 3
        assert sorted(m.channel_message_id for m in messages(services, inbox_id)) == [
            f"pipe-{i}@customers.test" for i in range(3)
        ]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_client_that_pipelines_sends_through_aiosmtplib(
    services: Services, account: AccountFixture
) -> None:
    """A standard client still works, and sees PIPELINING offered."""
    inbox_id, _ = make_inbox(services, account.id, "email", {"address": "support@shop.test"})
    port = free_port()
    server = await smtp_server.start(services, "127.0.0.1", port)
    try:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        await client.ehlo()
        assert client.supports_extension("pipelining")
        await client.sendmail("c9@customers.test", ["support@shop.test"], _mail(9))
        await client.quit()
        assert counts(services, inbox_id)["messages"] == 1
    finally:
        server.close()
        await server.wait_closed()
