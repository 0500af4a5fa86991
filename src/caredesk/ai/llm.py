"""Optional LLM provider: any OpenAI-compatible `/v1/chat/completions` endpoint.

Used for grounded reply drafts with citations, case-brief summaries and simulated
customers. Nothing depends on it: every call has a timeout, its output is
validated (shape, length, citations that point at passages we gave it), and any
failure falls back to the embedded behaviour, which is extractive and offline.

Configure with CAREDESK_LLM_URL (base URL, e.g. http://127.0.0.1:11434), CAREDESK_LLM_MODEL,
CAREDESK_LLM_KEY (optional) and CAREDESK_LLM_TIMEOUT (seconds, default 20).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import httpx

from caredesk.ai.protocols import Citation, Draft, Drafter

log = logging.getLogger(__name__)
MAX_CHARS = 2000
_CITE = re.compile(r"\[(\d{1,2})\]")


class LLMError(Exception):
    """The provider failed or returned something we cannot use."""


class OpenAICompatibleClient:
    def __init__(self, url: str, model: str, key: str | None = None, timeout: float = 20.0) -> None:
        self.url = url.rstrip("/")
        if not self.url.endswith("/v1/chat/completions"):
            self.url += "/chat/completions" if self.url.endswith("/v1") else "/v1/chat/completions"
        self.model = model
        self.key = key
        self.timeout = timeout

    def chat(self, messages: list[dict[str, str]], max_tokens: int = 400, temperature: float = 0.2) -> str:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        try:
            resp = httpx.post(self.url, json=body, headers=headers, timeout=self.timeout)
            resp.raise_for_status()
            data: Any = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LLMError(f"provider call failed: {exc}") from exc
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError("provider answer lacks choices[0].message.content") from exc
        if not isinstance(content, str) or not content.strip():
            raise LLMError("provider returned empty content")
        if len(content) > MAX_CHARS * 2:
            raise LLMError("provider returned an over-long answer")
        return content.strip()


class EmbeddedDrafter:
    """Offline drafting: quote the best passage, summarise extractively."""

    def draft_reply(self, customer_message: str, passages: Sequence[Citation]) -> Draft:
        if not passages:
            return Draft("", (), "embedded")
        top = passages[0]
        text = f"{top.passage.strip()}\n\n(From our help article “{top.title}”.)"
        return Draft(text, (top,), "embedded")

    def summarize(self, transcript: Sequence[str]) -> str:
        lines = [t.strip() for t in transcript if t.strip()]
        if not lines:
            return ""
        if len(lines) <= 2:
            return " / ".join(lines)[:MAX_CHARS]
        return f"Started with: {lines[0]} | Latest: {lines[-1]} ({len(lines)} messages)"[:MAX_CHARS]

    def simulate_customer(self, persona: str, transcript: Sequence[str]) -> str:
        return "I still need help with this, can you tell me what happens next?"


class LLMDrafter:
    """The LLM-backed `Drafter`, falling back to `EmbeddedDrafter` on any failure."""

    def __init__(self, client: OpenAICompatibleClient, fallback: EmbeddedDrafter | None = None) -> None:
        self.client = client
        self.fallback = fallback or EmbeddedDrafter()

    def draft_reply(self, customer_message: str, passages: Sequence[Citation]) -> Draft:
        if not passages:
            return self.fallback.draft_reply(customer_message, passages)
        sources = "\n\n".join(f"[{i + 1}] {p.title}\n{p.passage}" for i, p in enumerate(passages))
        messages = [
            {
                "role": "system",
                "content": "You draft replies for a customer-care agent. Use only the numbered sources. "
                "Cite every fact with its source number in square brackets, like [1]. If the sources do not "
                "answer the question, say you will check and get back. Be brief, specific and warm; no stock "
                "phrases.",
            },
            {"role": "user", "content": f"Sources:\n{sources}\n\nCustomer message:\n{customer_message}"},
        ]
        try:
            text = self.client.chat(messages)
            cited = sorted({int(n) for n in _CITE.findall(text)})
            if not cited or any(n < 1 or n > len(passages) for n in cited):
                raise LLMError(f"draft cites {cited or 'nothing'}, sources are 1..{len(passages)}")
            if len(text) > MAX_CHARS:
                raise LLMError("draft too long")
            return Draft(text, tuple(passages[n - 1] for n in cited), "llm")
        except LLMError as exc:
            log.warning("LLM draft failed, using the embedded drafter: %s", exc)
            return self.fallback.draft_reply(customer_message, passages)

    def summarize(self, transcript: Sequence[str]) -> str:
        messages = [
            {
                "role": "system",
                "content": "Summarise this support conversation for a colleague taking over, in at most "
                "5 short lines: the customer's goal, verified facts, steps already tried, "
                "promises made, the mood.",
            },
            {"role": "user", "content": "\n".join(transcript)},
        ]
        try:
            text = self.client.chat(messages, max_tokens=250)
            if len(text) > MAX_CHARS:
                raise LLMError("summary too long")
            return text
        except LLMError as exc:
            log.warning("LLM summary failed, using the embedded summary: %s", exc)
            return self.fallback.summarize(transcript)

    def simulate_customer(self, persona: str, transcript: Sequence[str]) -> str:
        messages = [
            {
                "role": "system",
                "content": f"You play a customer contacting support. Persona: {persona}. Reply with the "
                "customer's next message only, one or two sentences.",
            },
            {"role": "user", "content": "\n".join(transcript) or "(start the conversation)"},
        ]
        try:
            return self.client.chat(messages, max_tokens=120, temperature=0.7)[:MAX_CHARS]
        except LLMError as exc:
            log.warning("LLM customer simulation failed, using the embedded line: %s", exc)
            return self.fallback.simulate_customer(persona, transcript)


def get_drafter() -> Drafter:
    """The configured drafter: the LLM one when CAREDESK_LLM_URL and CAREDESK_LLM_MODEL are set."""
    url = os.environ.get("CAREDESK_LLM_URL")
    model = os.environ.get("CAREDESK_LLM_MODEL")
    if url and model:
        timeout = float(os.environ.get("CAREDESK_LLM_TIMEOUT", "20"))
        return LLMDrafter(OpenAICompatibleClient(url, model, os.environ.get("CAREDESK_LLM_KEY"), timeout))
    return EmbeddedDrafter()
