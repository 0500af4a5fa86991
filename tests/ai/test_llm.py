"""The optional LLM provider against a stub OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from caredesk.ai.llm import EmbeddedDrafter, LLMDrafter, OpenAICompatibleClient, get_drafter
from caredesk.ai.protocols import Citation

MODE: dict[str, Any] = {"reply": "", "delay": 0.0, "status": 200, "raw": None}
SEEN: list[dict[str, Any]] = []


class Stub(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SEEN.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        time.sleep(MODE["delay"])
        payload = (
            MODE["raw"]
            if MODE["raw"] is not None
            else json.dumps({"choices": [{"message": {"role": "assistant", "content": MODE["reply"]}}]})
        )
        try:
            self.send_response(MODE["status"])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(autouse=True)
def _reset() -> None:
    MODE.update(reply="", delay=0.0, status=200, raw=None)
    SEEN.clear()


PASSAGES = [
    Citation("returns", "Returns and refunds", "Refunds go back to the card within 5 working days."),
    Citation("shipping", "Delivery", "Express delivery arrives the next working day."),
]


def drafter(url: str, timeout: float = 2.0) -> LLMDrafter:
    return LLMDrafter(OpenAICompatibleClient(url, "stub-model", key="sk-test", timeout=timeout))


def test_grounded_draft_with_citations(server: str) -> None:
    MODE["reply"] = "Your refund will reach your card within 5 working days [1]."
    draft = drafter(server).draft_reply("where is my refund?", PASSAGES)
    assert draft.source == "llm"
    assert [c.article_id for c in draft.citations] == ["returns"]
    assert SEEN[0]["path"] == "/v1/chat/completions"
    assert SEEN[0]["body"]["model"] == "stub-model" and SEEN[0]["auth"] == "Bearer sk-test"
    assert "Refunds go back" in json.dumps(SEEN[0]["body"]["messages"])


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ({"reply": "Your refund is on its way."}, "no citation"),
        ({"reply": "See [7] for details."}, "citation of a source we did not give"),
        ({"reply": ""}, "empty"),
        ({"raw": "this is not json"}, "not JSON"),
        ({"raw": json.dumps({"choices": []})}, "wrong shape"),
        ({"status": 500, "reply": "x [1]"}, "server error"),
    ],
)
def test_invalid_output_falls_back_to_embedded(server: str, mode: dict[str, Any], why: str) -> None:
    MODE.update(mode)
    draft = drafter(server).draft_reply("where is my refund?", PASSAGES)
    assert draft.source == "embedded", why
    assert draft.citations == (PASSAGES[0],) and PASSAGES[0].passage in draft.text


def test_timeout_falls_back(server: str) -> None:
    MODE.update(reply="late answer [1]", delay=1.5)
    draft = drafter(server, timeout=0.3).draft_reply("where is my refund?", PASSAGES)
    assert draft.source == "embedded"
    summary = drafter(server, timeout=0.3).summarize(
        ["customer: my parcel is late", "agent: checking", "customer: ok"]
    )
    assert summary.startswith("Started with: customer: my parcel is late")


def test_summary_and_simulated_customer(server: str) -> None:
    MODE["reply"] = "Goal: refund for order 88231. Mood: annoyed."
    assert drafter(server).summarize(["customer: refund for 88231 please"]) == MODE["reply"]
    MODE["reply"] = "Hi, my parcel hasn't arrived."
    assert drafter(server).simulate_customer("impatient commuter", []) == MODE["reply"]


def test_unreachable_provider_falls_back() -> None:
    draft = drafter("http://127.0.0.1:9", timeout=0.5).draft_reply("refund?", PASSAGES)
    assert draft.source == "embedded"


def test_without_configuration_the_embedded_drafter_is_used(
    monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    monkeypatch.delenv("CAREDESK_LLM_URL", raising=False)
    assert isinstance(get_drafter(), EmbeddedDrafter)
    monkeypatch.setenv("CAREDESK_LLM_URL", server)
    monkeypatch.setenv("CAREDESK_LLM_MODEL", "m")
    assert isinstance(get_drafter(), LLMDrafter)
    assert EmbeddedDrafter().draft_reply("x", []).text == ""
