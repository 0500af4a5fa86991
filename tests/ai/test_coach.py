from __future__ import annotations

import pytest

from caredesk.ai.coach import review_reply


@pytest.mark.parametrize(
    "reply",
    [
        "We apologize for any inconvenience.",
        "We apologize for any inconvenience. Thank you for your patience.",
        "Sorry for the inconvenience, we value your business. Is there anything else I can help you with?",
        "We understand your frustration and are looking into it.",
    ],
)
def test_script_speak_is_flagged_with_reasons(reply: str) -> None:
    review = review_reply("My order #88231 arrived broken and I want a refund", reply)
    assert review.scripted is True and review.score >= 0.5
    assert review.reasons and review.suggestion.startswith("Make it specific")


def test_the_coach_names_the_missing_details() -> None:
    review = review_reply("My order #88231 arrived broken", "We apologize for any inconvenience.")
    assert any("apologises without" in r for r in review.reasons)
    assert any("88231" in r for r in review.reasons)
    assert "88231" in review.suggestion


@pytest.mark.parametrize(
    "reply",
    [
        "I've refunded the £49.99 for order 88231 to your card; it will show within 3 working days.",
        "Sorry the lamp from order 88231 arrived broken. I've sent a new one, arriving Thursday.",
    ],
)
def test_specific_replies_pass(reply: str) -> None:
    review = review_reply("My order #88231 arrived broken and I want a refund", reply)
    assert review.scripted is False and review.score < 0.5
    assert review.suggestion == ""
