"""A fake provider HTTP server on loopback: records every request, answers from a script, fails on demand.

POST and GET are answered alike: an injected failure from `fail_next` first, else `reply`. GET also serves
media: `files` maps a path (without its query) to (content type, bytes), `redirects` maps a path to the
URL to send the client to (Twilio answers media requests with a redirect to its CDN), and `hang_next`
makes that many requests wait `hang_seconds` before answering (client timeouts)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeProvider:
    """`fail_next` holds (status, headers) answers used before the normal one; `reply` builds that one."""

    requests: list[Recorded] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    reply: Any = None  # callable(Recorded) -> (status, dict body)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    hang_next: int = 0
    hang_seconds: float = 2.0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeProvider:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                n = int(self.headers.get("content-length") or 0)
                rec = Recorded(
                    method, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(n)
                )
                fake.requests.append(rec)
                if fake.hang_next > 0:
                    fake.hang_next -= 1
                    time.sleep(fake.hang_seconds)
                path = self.path.split("?", 1)[0]
                ctype = "application/json"
                if fake.fail_next:
                    status, headers = fake.fail_next.pop(0)
                    body = json.dumps({"error": "injected failure"}).encode()
                elif method == "GET" and path in fake.redirects:
                    status, headers, body = 307, {"location": fake.redirects[path]}, b""
                elif method == "GET" and path in fake.files:
                    (ctype, body), status, headers = fake.files[path], 200, {}
                else:
                    status, payload = fake.reply(rec) if fake.reply else (200, {"ok": True})
                    headers, body = {}, json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self._answer("POST")

            def do_GET(self) -> None:
                self._answer("GET")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
