"""R4: the worker is killed with SIGKILL at every point of a delivery, against fake providers on loopback that
record idempotency keys. Nothing is lost; where the provider honours the key (the API channel's webhook-id,
Standard Webhooks' dedupe key) the customer gets the reply exactly once; where it cannot (Twilio documents no
idempotency key), every duplicate is counted and reported, and happens only where it must.

The kill points are deterministic: a crash hook in a real `caredesk worker` process
(tests/channels/crashing_worker.py) or, for "the provider has the request but the answer is lost", a fake
provider that holds the request until the test has killed the worker. Expired leases are simulated by
moving `locked_until` into the past, not by sleeping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from caredesk.conversations.inbound import Inbound, receive_inbound
from caredesk.conversations.models import Message
from caredesk.platform import jobs
from caredesk.platform.models import utcnow
from caredesk.services import Services
from caredesk.settings import Settings
from tests.channels.helpers import make_inbox
from tests.conftest import REPO, AccountFixture, server_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

POINTS = ("before_call", "during_call", "after_call", "after_mark")
WH_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SCRIPT = REPO / "tests" / "channels" / "crashing_worker.py"


@dataclass
class Provider:
    """Records every request with its idempotency key; `honours_key`: a repeated key is answered as the
    first time and sends nothing again. `hold_next`: the next request is received (recorded) but never
    answered; `arrived` is set so the test can kill the worker while the answer is outstanding."""

    honours_key: bool
    requests: list[dict[str, Any]] = field(default_factory=list)
    effective: Counter[str] = field(default_factory=Counter)  # message text -> sends that reached a customer
    hold_next: bool = False
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Provider:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                key = headers.get("webhook-id") or headers.get("idempotency-key")
                if headers.get("content-type", "").startswith("application/json"):
                    text = json.loads(body)["data"]["text"]
                else:
                    text = dict(parse_qsl(body.decode()))["Body"]
                with fake.lock:
                    seen = key is not None and any(r["key"] == key for r in fake.requests)
                    fake.requests.append({"key": key, "text": text})
                    if not (seen and fake.honours_key):
                        fake.effective[text] += 1
                    hold, fake.hold_next = fake.hold_next, False
                if hold:
                    fake.arrived.set()
                    fake.release.wait(60)
                    return  # the worker is dead: nobody reads an answer
                answer = json.dumps({"sid": f"SM{len(fake.requests):032d}", "ok": True}).encode()
                self.send_response(201)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _conversation(session: Session, account_id: int, inbox_id: int, kind: str, value: str) -> int:
    res = receive_inbound(
        session,
        Inbound(
            account_id=account_id,
            inbox_id=inbox_id,
            identity_kind=kind,
            identity_value=value,
            text="Where is my parcel?",
            channel_message_id=f"in-{inbox_id}",
        ),
    )
    return res.conversation_id


def _expire_leases(session: Session) -> None:
    """What a lease of any length looks like once it has run out (instead of waiting for it)."""
    session.execute(
        update(jobs.Job)
        .where(jobs.Job.status == jobs.RUNNING)
        .values(locked_until=utcnow() - dt.timedelta(seconds=1))
    )


async def test_worker_killed_at_every_point_of_a_delivery(
    client: httpx.AsyncClient, services: Services, settings: Settings, account: AccountFixture
) -> None:
    keyed, unkeyed = Provider(honours_key=True).start(), Provider(honours_key=False).start()
    try:
        api_inbox, _ = make_inbox(
            services,
            account.id,
            "api",
            {"webhook_secret": WH_SECRET, "webhook_url": keyed.url + "/hooks"},
        )
        sms_inbox, _ = make_inbox(
            services,
            account.id,
            "twilio_sms",
            {
                "auth_token": "t0k3n",
                "account_sid": "ACf00000000000000000000000000000aa",
                "from_number": "+14155238886",
                "api_base": unkeyed.url,
            },
        )
        convs = {
            "api": await services.db.write(_conversation, account.id, api_inbox, "email", "r4@example.com"),
            "twilio": await services.db.write(_conversation, account.id, sms_inbox, "phone", "+14158675310"),
        }
        assert services.worker is not None
        await services.worker.run_until_idle()  # the inbound messages' own jobs: out of the way first
        providers = {"api": keyed, "twilio": unkeyed}
        env = {
            **os.environ,
            **server_env(settings),
            "PYTHONPATH": str(REPO / "src"),
            "CAREDESK_JOB_LEASE_SECONDS": "60",
        }
        sent: dict[str, int] = {}  # message text -> message id
        for channel, conv_id in convs.items():
            provider = providers[channel]
            for point in POINTS:
                text = f"r4 {channel} {point}"
                r = await client.post(
                    f"/api/v1/conversations/{conv_id}/messages", json={"content": text}, headers=account.auth
                )
                assert r.status_code == 201, r.text
                sent[text] = r.json()["id"]
                provider.arrived.clear()
                provider.hold_next = point == "during_call"
                proc = subprocess.Popen(
                    [sys.executable, str(SCRIPT), "worker", "--concurrency", "1"],
                    env={**env, "R4_CRASH_AT": point},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                if point == "during_call":
                    assert await asyncio.to_thread(provider.arrived.wait, 60), "the send never arrived"
                    proc.kill()
                rc = await asyncio.to_thread(proc.wait, 60)
                assert rc == -9, f"{point}: the worker was not killed there (rc {rc}): {proc.stderr.read()!r}"  # type: ignore[union-attr]
                proc.stderr.close()  # type: ignore[union-attr]
                # Only the killed attempt's job holds a lease; the next round's worker cannot claim it.
                job = await services.db.read(
                    lambda s, mid=sent[text]: s.execute(
                        select(jobs.Job).where(jobs.Job.idempotency_key == f"deliver:{mid}")
                    ).scalar_one()
                )
                assert job.status == jobs.RUNNING and job.attempts == 1, (point, job.status)

        # Every lease runs out; a fresh `caredesk worker` finishes what the dead ones left.
        await services.db.write(_expire_leases)
        done = subprocess.run(
            [sys.executable, "-m", "caredesk.cli", "worker", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    finally:
        keyed.stop()
        unkeyed.stop()

    stored = await services.db.read(
        lambda s: {m.id: m for m in s.execute(select(Message).where(Message.id.in_(sent.values()))).scalars()}
    )
    lost = [t for t, mid in sent.items() if stored[mid].status != "sent"]
    assert lost == [], f"replies not delivered: {lost}"
    left = await services.db.read(
        lambda s: list(s.execute(select(jobs.Job.status).where(jobs.Job.kind == "message.deliver")).scalars())
    )
    assert left == ["done"] * 8

    # Every reply reached the provider at least once.
    for channel, provider in providers.items():
        for point in POINTS:
            assert provider.effective[f"r4 {channel} {point}"] >= 1, (channel, point)
    # The provider that honours the key: exactly one effective send per reply, whatever the kill point,
    # although the worker did call it twice where the answer was lost.
    assert {p: keyed.effective[f"r4 api {p}"] for p in POINTS} == dict.fromkeys(POINTS, 1)
    api_calls = Counter(r["text"] for r in keyed.requests)
    assert api_calls == {
        "r4 api before_call": 1,
        "r4 api during_call": 2,
        "r4 api after_call": 2,
        "r4 api after_mark": 1,
    }
    assert len({r["key"] for r in keyed.requests}) == 4  # the retry reused its job's key
    # The provider without idempotency keys: the duplicates, counted and reported. They happen only where
    # the provider had the message and the worker died before recording it; once marked sent, never again.
    duplicates = {t[len("r4 twilio ") :]: n - 1 for t, n in unkeyed.effective.items() if n > 1}
    print(f"\nR4 report: duplicates sent by a provider without idempotency keys: {duplicates or 'none'}")
    assert duplicates == {"during_call": 1, "after_call": 1}
    assert all(r["key"] is None for r in unkeyed.requests)
