"""Ingestion throughput of the channels, through the real paths.

Webhooks: a uvicorn server on loopback (SQLite, no embedded worker), N distinct signed payloads per
provider format posted by concurrent httpx clients; every answer must be 2xx and every message stored.
Email: the built-in SMTP server of the same Caredesk process (CAREDESK_SMTP_PORT), a generated corpus of
new mails and replies sent by concurrent SMTP clients from this process; afterwards every reply must sit
in its parent's conversation.

    .venv/bin/python bench/channels_ingest.py --webhooks 2000 --emails 1000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import hashlib
import hmac
import os
import platform
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from caredesk.accounts.actions import create_account, create_inbox  # noqa: E402
from caredesk.accounts.actors import system_actor  # noqa: E402
from caredesk.channels.api import standard_webhooks  # noqa: E402
from caredesk.channels.twilio.signature import twilio_signature  # noqa: E402
from caredesk.migrate import upgrade  # noqa: E402
from caredesk.platform.db import Database  # noqa: E402

TW, META, TG, WH = (
    "bench-twilio-token",
    "bench-meta-secret",
    "bench-tg-secret",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
)


def setup(db_url: str) -> tuple[int, dict[str, tuple[int, str]]]:
    db = Database(db_url)
    upgrade(db)

    def w(s: object) -> tuple[int, dict[str, tuple[int, str]]]:
        acc = create_account(s, "Bench", "bench")  # type: ignore[arg-type]
        actor = system_actor(acc.id)
        specs = {
            "twilio_sms": {"auth_token": TW},
            "whatsapp_cloud": {"app_secret": META},
            "telegram": {"secret_token": TG},
            "api": {"webhook_secret": WH},
            "email": {"address": "support@bench.test"},
        }
        out = {}
        for ch, cfg in specs.items():
            ib = create_inbox(s, actor, name=ch, channel=ch, config=cfg)  # type: ignore[arg-type]
            out[ch] = (ib.id, ib.public_token)
        return acc.id, out

    res = db.write_sync(w)
    db.close()
    return res


def add_email_inbox(db_url: str, account_id: int, address: str) -> tuple[int, str]:
    db = Database(db_url)

    def w(s: object) -> tuple[int, str]:
        ib = create_inbox(
            s, system_actor(account_id), name=address, channel="email", config={"address": address}
        )  # type: ignore[arg-type]
        return ib.id, ib.public_token

    res = db.write_sync(w)
    db.close()
    return res


def twilio_req(url: str, i: int) -> tuple[bytes, dict[str, str]]:
    params = {
        "MessageSid": f"SM{i:032d}",
        "AccountSid": "AC" + "0" * 32,
        "From": f"+1415{5550000 + i % 5000:07d}",
        "To": "+14155238886",
        "Body": f"Order {i} is late",
        "NumMedia": "0",
        "SmsStatus": "received",
    }
    return urlencode(params).encode(), {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio_signature(TW, url, params.items()),
    }


def whatsapp_req(url: str, i: int) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"phone_number_id": "1"},
                                "contacts": [
                                    {"profile": {"name": "C"}, "wa_id": f"1650{5550000 + i % 5000:07d}"}
                                ],
                                "messages": [
                                    {
                                        "from": f"1650{5550000 + i % 5000:07d}",
                                        "id": f"wamid.{i}",
                                        "timestamp": "1750000000",
                                        "type": "text",
                                        "text": {"body": f"hello {i}"},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    )
    return body, {
        "content-type": "application/json",
        "x-hub-signature-256": "sha256=" + hmac.new(META.encode(), body, hashlib.sha256).hexdigest(),
    }


def telegram_req(url: str, i: int) -> tuple[bytes, dict[str, str]]:
    chat = 100000 + i % 5000
    body = orjson.dumps(
        {
            "update_id": 1000000 + i,
            "message": {
                "message_id": i,
                "from": {"id": chat, "first_name": "T"},
                "chat": {"id": chat, "type": "private"},
                "date": 1750000000,
                "text": f"hi {i}",
            },
        }
    )
    return body, {"content-type": "application/json", "x-telegram-bot-api-secret-token": TG}


def api_req(url: str, i: int) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {"id": f"ext-{i}", "from": {"kind": "api", "value": f"user-{i % 5000}"}, "text": f"message {i}"}
    )
    return body, {"content-type": "application/json", **standard_webhooks.headers_for(WH, f"msg_{i}", body)}


FORMATS = {
    "twilio": ("twilio_sms", twilio_req),
    "whatsapp": ("whatsapp_cloud", whatsapp_req),
    "telegram": ("telegram", telegram_req),
    "api": ("api", api_req),
}


async def bench_webhooks(
    base: str, public: str, inboxes: dict[str, tuple[int, str]], n: int, conc: int
) -> dict[str, float]:
    out = {}
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        for seg, (channel, make) in FORMATS.items():
            path = f"/webhooks/{seg}/{inboxes[channel][1]}"
            reqs = [make(public + path, i) for i in range(n)]
            queue = iter(reqs)
            bad: list[int] = []

            async def worker(queue=queue, path=path, bad=bad) -> None:  # type: ignore[no-untyped-def]
                for body, headers in queue:
                    r = await client.post(path, content=body, headers=headers)
                    if r.status_code >= 300:
                        bad.append(r.status_code)

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            dt = time.perf_counter() - t0
            if bad:
                raise SystemExit(f"{seg}: {len(bad)} non-2xx answers, e.g. {bad[:5]}")
            out[seg] = n / dt
            print(f"webhooks {seg:9s} {n} in {dt:.2f}s = {n / dt:,.0f}/s", flush=True)
    return out


WRK_LUA = r"""
local reqs = {}
local i = 0
init = function(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = data:find("\n", pos, true)
    local len = tonumber(data:sub(pos, nl - 1))
    reqs[#reqs + 1] = data:sub(nl + 1, nl + len)
    pos = nl + len + 1
  end
end
request = function()
  i = i + 1
  if i > #reqs then
    return wrk.format("GET", "/healthz")  -- past the prepared deliveries: nothing more to store
  end
  return reqs[i]
end
"""


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_webhooks_wrk(
    public: str, inboxes: dict[str, tuple[int, str]], seconds: int, conc: int, db_url: str, server_pid: int
) -> dict[str, float]:
    """wrk (C, one thread) sends prepared, distinct, signed deliveries: the client costs little CPU, so the
    figure is the server's. Each delivery is a new message; every answer must be 2xx and every one stored."""
    import re
    import shutil

    from sqlalchemy import text

    from caredesk.platform.db import Database

    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed for --client wrk: apt-get install wrk")
    out = {}
    host = public.split("://", 1)[1]
    tmp = Path(tempfile.mkdtemp(prefix="cd-wrk-"))
    lua = tmp / "deliveries.lua"
    lua.write_text(WRK_LUA)
    n = 5000 * seconds  # more than the server can take in the time: no delivery is sent twice
    for seg, (channel, make) in FORMATS.items():
        path = f"/webhooks/{seg}/{inboxes[channel][1]}"
        data = tmp / f"{seg}.reqs"
        with data.open("wb") as f:
            for i in range(n):
                body, headers = make(public + path, i)
                head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                req = head.encode() + b"\r\n" + body
                f.write(f"{len(req)}\n".encode() + req)
        db = Database(db_url)
        count = "SELECT count(*) FROM messages WHERE inbox_id = :i"
        before = db.read_sync(lambda s: s.execute(text(count), {"i": inboxes[channel][0]}).scalar())  # noqa: B023
        cpu0 = cpu_seconds(server_pid)
        res = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{conc}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(lua),
                public,
                "--",
                str(data),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cpu = cpu_seconds(server_pid) - cpu0
        after = db.read_sync(lambda s: s.execute(text(count), {"i": inboxes[channel][0]}).scalar())  # noqa: B023
        db.close()
        total = int(re.search(r"(\d+) requests in", res).group(1))  # type: ignore[union-attr]
        secs = float(re.search(r"requests in ([\d.]+)s", res).group(1))  # type: ignore[union-attr]
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", res)
        p99 = re.search(r"\s99%\s+([\d.]+\w+)", res)
        stored = int(after) - int(before)
        if total > n:
            raise SystemExit(f"{seg}: ran out of prepared deliveries ({total} > {n})")
        # wrk stops with up to `conc` requests in flight: those are stored but not counted as answered.
        if non2xx or not total <= stored <= total + conc:
            raise SystemExit(
                f"{seg}: {total} sent, {stored} stored, non-2xx: {non2xx.group(1) if non2xx else 0}"
            )
        out[seg] = total / secs
        print(
            f"webhooks {seg:9s} {total} answered 2xx in {secs:.2f}s = {total / secs:,.0f}/s, {stored} stored "
            f"(p99 {p99.group(1) if p99 else '?'}, {conc} connections, wrk; "
            f"server CPU {cpu / stored * 1e6:.0f} us per delivery)",
            flush=True,
        )
    return out


def corpus(n: int, to: str, tag: str = "") -> list[tuple[EmailMessage, str | None]]:
    """New mails, and replies (every third mail) to an earlier one: (message, parent Message-ID).

    `tag` makes the senders and Message-IDs of another run new ones."""
    out: list[tuple[EmailMessage, str | None]] = []
    for i in range(n):
        m = EmailMessage()
        parent = f"bench{tag}-{i - 3}@customers.test" if i % 3 == 2 and i >= 3 else None
        sender = f"c{tag}{(i - 3 if parent else i) % 100000}@customers.test"
        m["From"], m["To"], m["Message-ID"] = sender, to, f"<bench{tag}-{i}@customers.test>"
        m["Subject"] = f"Re: Question {i - 3}" if parent else f"Question {i}"
        if parent:
            m["In-Reply-To"] = m["References"] = f"<{parent}>"
            m.set_content(f"Follow-up {i}\n\nOn Mon, someone wrote:\n> earlier text\n")
        else:
            m.set_content(f"Question number {i}, please help.\n-- \nA customer")
        out.append((m, parent))
    return out


async def bench_email(
    db_url: str, inbox_id: int, to: str, n: int, conc: int, port: int, server_pid: int, pipelining: bool
) -> float:
    """Mails to the SMTP server of the Caredesk process (CAREDESK_SMTP_PORT), from this process."""
    from sqlalchemy import text

    mails = corpus(n, to, "p" if pipelining else "")
    # Serialised before the clock starts, so that the clients spend their CPU on SMTP only: a plain
    # SMTP conversation per mail on raw streams; with `pipelining` MAIL, RCPT and DATA go in one write,
    # as Postfix and Exim send them to a server that offers PIPELINING, else each answer is awaited.
    # aiosmtplib's send_message cost more CPU than the server's whole work per mail here.
    wire = []
    for m, parent in mails:
        data = m.as_bytes(policy=email.policy.SMTP).replace(b"\r\n.", b"\r\n..")
        sender = str(m["From"]).encode()
        wire.append((sender, data, str(m["Message-ID"]).strip("<>"), parent))
    # Parents go first in the order sent: a reply is sent only after its parent was acknowledged.
    queue = iter(wire)
    sent: set[str] = set()
    loop = asyncio.get_running_loop()
    rcpt = b"RCPT TO:<" + to.encode() + b">\r\n"

    class Client(asyncio.Protocol):
        """One SMTP session as a state machine on the transport: the client's own CPU per mail stays
        small next to the server's (asyncio streams cost about twice as much here)."""

        def __init__(self) -> None:
            self.buf = b""
            self.expect: list[bytes] = [b"220"]
            self.then = self.ehlo
            self.mail: tuple[bytes, bytes, str, str | None] | None = None
            self.done = loop.create_future()
            self.transport: asyncio.Transport

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if line[3:4] == b"-":
                    if line.startswith(b"250-PIPELINING"):
                        self.pipelining_offered = True
                    continue
                want = self.expect.pop(0)
                if not line.startswith(want):
                    self.done.set_exception(SystemExit(f"SMTP: expected {want!r}, got {line!r}"))
                    self.transport.close()
                    return
                if not self.expect:
                    self.then()

        def send(self, data: bytes, expect: list[bytes], then: Any) -> None:
            self.expect, self.then = expect, then
            self.transport.write(data)

        def ehlo(self) -> None:
            self.pipelining_offered = False
            self.send(b"EHLO bench.test\r\n", [b"250"], self.next_mail)

        def next_mail(self) -> None:
            if self.mail is not None:
                sent.add(self.mail[2])
            elif pipelining and not self.pipelining_offered:
                self.done.set_exception(SystemExit("SMTP: the server does not offer PIPELINING"))
                return
            self.mail = next(queue, None)
            if self.mail is None:
                self.send(b"QUIT\r\n", [b"221"], lambda: self.done.set_result(None))
                return
            self.start_mail()

        def start_mail(self) -> None:
            assert self.mail is not None
            sender, _data, _mid, parent = self.mail
            if parent is not None and parent not in sent:
                loop.call_later(0.001, self.start_mail)
                return
            mail = b"MAIL FROM:<" + sender + b">\r\n"
            if pipelining:  # one write for the group, then its three replies (RFC 2920)
                self.send(mail + rcpt + b"DATA\r\n", [b"250", b"250", b"354"], self.body)
            else:
                self.send(
                    mail,
                    [b"250"],
                    lambda: self.send(rcpt, [b"250"], lambda: self.send(b"DATA\r\n", [b"354"], self.body)),
                )

        def body(self) -> None:
            assert self.mail is not None
            data = self.mail[1]
            self.send(
                data + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n", [b"250"], self.next_mail
            )

    async def worker() -> None:
        _transport, client = await loop.create_connection(Client, "127.0.0.1", port)
        await client.done

    t0 = time.perf_counter()
    cpu0, client0 = cpu_seconds(server_pid), time.process_time()
    await asyncio.gather(*(worker() for _ in range(conc)))
    dt = time.perf_counter() - t0
    server_cpu, client_cpu = cpu_seconds(server_pid) - cpu0, time.process_time() - client0
    db = Database(db_url)
    rows = db.read_sync(
        lambda s: dict(
            s.execute(
                text("SELECT channel_message_id, conversation_id FROM messages WHERE inbox_id = :i"),
                {"i": inbox_id},
            ).all()
        )
    )
    wrong = sum(
        1 for m, parent in mails if parent and rows.get(str(m["Message-ID"]).strip("<>")) != rows.get(parent)
    )
    new = sum(1 for _m, p in mails if p is None)
    convs = len({rows[str(m["Message-ID"]).strip("<>")] for m, p in mails if p is None})
    print(
        f"email{' (pipelined)' if pipelining else ''} {n} in {dt:.2f}s = {n / dt:,.0f}/s; stored {len(rows)}/{n}; replies threaded wrong: {wrong}; "
        f"new mails -> {convs}/{new} distinct conversations; "
        f"server CPU {server_cpu / n * 1e6:.0f} us per mail (clients {client_cpu / n * 1e6:.0f} us); "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    db.close()
    if len(rows) != n or wrong or convs != new:
        raise SystemExit("email threading check failed")
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--webhooks", type=int, default=2000, help="requests per provider format")
    ap.add_argument("--emails", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument(
        "--smtp-pipelining",
        choices=("off", "on", "both"),
        default="both",
        help="SMTP clients wait for each reply (off), send MAIL+RCPT+DATA together (on), or one run of each",
    )
    ap.add_argument(
        "--client",
        choices=("wrk", "httpx"),
        default="wrk",
        help="webhook client: wrk (C; the figure is the server's) or httpx (Python, on the same cores)",
    )
    ap.add_argument("--seconds", type=int, default=10, help="per provider format, with --client wrk")
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="cd-bench-"))
    db_url = f"sqlite:///{tmp / 'bench.db'}"
    _acc, inboxes = setup(db_url)
    port = 18000 + os.getpid() % 1000
    smtp_port = port + 1000
    public = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CAREDESK_DATABASE_URL": db_url,
        "CAREDESK_DATA_DIR": str(tmp / "data"),
        "CAREDESK_SECRET_KEY": "bench-secret-1",
        "CAREDESK_RATE_LIMIT_PER_MINUTE": "100000000",
        "CAREDESK_EMBEDDED_WORKER": "false",
        "CAREDESK_PUBLIC_URL": public,
        "CAREDESK_LOG_LEVEL": "warning",
        "CAREDESK_SMTP_PORT": str(smtp_port),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "caredesk.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        env=env,
        cwd=str(ROOT),
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(public + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        if args.webhooks and args.client == "wrk":
            bench_webhooks_wrk(public, inboxes, args.seconds, args.concurrency, db_url, proc.pid)
        elif args.webhooks:
            asyncio.run(bench_webhooks(public, public, inboxes, args.webhooks, args.concurrency))
        modes = {"off": [False], "on": [True], "both": [False, True]}[args.smtp_pipelining]
        for pipelining in modes if args.emails else []:
            # Each run writes to an inbox of its own, so that its threading check counts only its mails.
            to = "support-pipelined@bench.test" if pipelining else "support@bench.test"
            inbox_id = add_email_inbox(db_url, _acc, to)[0] if pipelining else inboxes["email"][0]
            uvloop.run(
                bench_email(
                    db_url, inbox_id, to, args.emails, args.concurrency, smtp_port, proc.pid, pipelining
                )
            )
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
