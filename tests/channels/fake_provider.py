"""A fake provider HTTP server on loopback: records every request, answers from a script, fails on demand."""

from __future__ import annotations

import json
import threading
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
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeProvider:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                rec = Recorded(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(n)
                )
                fake.requests.append(rec)
                if fake.fail_next:
                    status, headers = fake.fail_next.pop(0)
                    body = json.dumps({"error": "injected failure"}).encode()
                else:
                    status, payload = fake.reply(rec) if fake.reply else (200, {"ok": True})
                    headers, body = {}, json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
