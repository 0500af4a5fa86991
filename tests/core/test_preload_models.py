"""A process that runs the AI step loads the language models before it serves anyone: loading holds the
GIL for seconds, and done lazily on the first message that needs them it froze every real-time stream of
the process for that long (the p99 spikes of bench/realtime_latency.py). Then the startup heap is frozen
out of the full garbage collections, which otherwise pause the process for as long as they walk it."""

from __future__ import annotations

import gc

import pytest

import caredesk.ai.language as language
from caredesk.app import build_services, create_app
from caredesk.settings import Settings


@pytest.mark.parametrize(
    ("preload", "worker", "expected"),
    [(True, True, ["preload", "freeze"]), (False, True, []), (True, False, ["freeze"])],
)
async def test_models_are_loaded_at_start_when_the_process_runs_the_ai_step(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, preload: bool, worker: bool, expected: list[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(language, "preload", lambda: calls.append("preload"))
    # The startup heap leaves the full collections (recorded here, not done: pytest's heap would stay).
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    settings = settings.model_copy(update={"preload_models": preload})
    svc = build_services(settings, embedded_worker=worker)
    if svc.worker is not None:
        svc.worker.stop()
    app = create_app(settings, services=svc)
    async with app.router.lifespan_context(app):
        assert calls == expected  # already done when the app starts serving


def test_preload_builds_the_detector_the_lazy_path_then_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[bool] = []
    monkeypatch.setattr(language, "_detector", None)
    real = language._lingua

    def spy(preload: bool = False) -> object:
        if language._detector is None:
            built.append(preload)
        return real(preload)

    monkeypatch.setattr(language, "_lingua", spy)
    monkeypatch.setenv("CAREDESK_LANGUAGES", "en,de")  # two languages: quick to load
    language.preload()
    assert built == [True]
    assert language.detect_languages(["Guten Morgen, wo ist meine Bestellung"]) == ["de"]
    assert built == [True]  # no second load
