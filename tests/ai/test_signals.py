"""Signals: escalation in many wordings, frustration, spam that is filed not dropped, slots, language."""

from __future__ import annotations

import datetime as dt

import pytest

from caredesk.ai.escalation import decide
from caredesk.ai.sentiment import LexiconSentiment
from caredesk.ai.signals import Signals, analyze
from caredesk.ai.slots import extract_slots
from caredesk.ai.spam import RuleSpamScorer


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a human",
        "Can I speak to a real person please?",
        "agent please",
        "HUMAN PLEASE",
        "representative",
        "Put me through to someone in customer service",
        "are you a bot?",
        "I need to speak with a manager",
        "Let me talk to an actual person, this bot is useless",
        "connect me to a live agent",
        "Please escalate this",
        "can someone call me back?",
        "Is there a human I can chat with",
        "transfer me to your supervisor",
    ],
)
def test_request_for_a_person_escalates(text: str) -> None:
    sig = analyze(text)
    assert sig.escalate is True
    assert sig.escalate_reason == "human_requested"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("My husband passed away last month and the account is in his name", "bereavement"),
        ("There's a charge on my card I don't recognise", "fraud"),
        ("I never made this purchase of £199", "fraud"),
        ("The charger started sparking and smoke came out", "safety"),
        ("I lost my job and can't afford the payments", "financial_hardship"),
        ("My mum has dementia and ordered this by mistake", "vulnerability"),
        ("I'm taking this to the ombudsman", "legal_or_complaint"),
        ("This is the third time I'm asking about my refund", "repeated_contact"),
        ("I want to talk to a human, there's gas leaking from the boiler you fitted", "safety"),
    ],
)
def test_sensitive_situations_escalate_with_their_reason(text: str, reason: str) -> None:
    assert analyze(text).escalate_reason == reason


@pytest.mark.parametrize(
    "text",
    [
        "My phone died so I missed the delivery call",
        "Do you sell gas canisters for camping stoves?",
        "What's the court shoe size guide like?",
        "Where is my order #45821?",
        "Thanks, that's perfect",
        "No need to call me, email is fine",
    ],
)
def test_ordinary_messages_do_not_escalate(text: str) -> None:
    sig = analyze(text)
    assert sig.escalate is False and sig.escalate_reason is None


def test_support_chat_frustration_is_seen_where_lexicons_miss_it() -> None:
    model = LexiconSentiment()
    calm_mood, calm = model.score_one("Could you tell me when my order will arrive?")
    mood, frustration = model.score_one("This is the third time I'm asking. Still no refund!!")
    assert frustration > 0.6 > calm
    assert mood < 0 <= calm_mood
    sarcastic_mood, sarcastic = model.score_one("Thanks for nothing.")
    assert sarcastic_mood < 0 and sarcastic > 0.5
    happy, _ = model.score_one("Thank you so much, that fixed it, great help!")
    assert happy > 0.5
    assert model.score_one("I'm not happy with this")[0] < 0


def test_strong_frustration_alone_escalates() -> None:
    assert decide("whatever", frustration=0.9).reason == "frustration"
    assert decide("whatever", frustration=0.1).escalate is False


@pytest.mark.parametrize(
    "text",
    [
        "WINNER!! You have been selected to receive a £900 prize reward! To claim call 09061701461. Valid 12 hours",
        "Congratulations! You've won a free holiday. Txt WIN to 80086 now. T&Cs apply 18+",
        "Your account has been suspended. Verify your account at http://bit.ly/secure-login now",
        "Dear beneficiary, release of the funds requires a processing fee via Western Union",
        "We can help your business rank on Google! Best SEO services, increase your traffic today. Click here",
    ],
)
def test_spam_and_scams_are_flagged(text: str) -> None:
    sig = analyze(text)
    assert sig.spam is True and sig.spam_score >= 0.5
    assert sig.escalate is False  # spam goes to the spam folder, not to an agent's queue


@pytest.mark.parametrize(
    "text",
    [
        "I got a text saying I won a prize from you, is this legit?",
        "Free delivery was advertised but I was charged £4.99",
        "Please stop sending me marketing emails",
        "Can I claim a refund on order 5512?",
        "Your link to verify my account doesn't work",
    ],
)
def test_real_customers_are_not_marked_spam(text: str) -> None:
    assert analyze(text).spam is False


def test_spam_is_flagged_not_dropped() -> None:
    texts = [
        "hello, where is my parcel?",
        "WINNER! Txt CLAIM to 81010 for your £1000 prize. T&Cs 18+",
        "thanks",
    ]
    out = analyze(texts)
    assert [s.text for s in out] == texts  # every message comes back, spam included, in order
    assert [s.spam for s in out] == [False, True, False]


def test_a_scam_report_is_treated_as_possible_fraud() -> None:
    sig = analyze("I got a text claiming to be from you asking for my bank details, is this legit?")
    assert sig.spam is False and sig.escalate_reason == "fraud"


def test_rule_spam_scores_are_probabilities() -> None:
    scores = RuleSpamScorer().score(["hi", "WINNER! claim your prize now, txt WIN to 80080, T&Cs 18+"])
    assert 0 <= scores[0] < 0.2 < 0.9 < scores[1] <= 1


def test_slots_are_extracted() -> None:
    text = (
        "Hi, my name is Sarah Jones. Order #A12345 was charged $49.99 twice on 3 March 2024. "
        "Call me on +44 7911 123456 or sarah.j@example.com. Postcode SW1A 1AA"
    )
    found = {(s.type, s.value) for s in extract_slots(text)}
    assert {
        ("name", "Sarah Jones"),
        ("order_number", "A12345"),
        ("amount", "49.99"),
        ("date", "2024-03-03"),
        ("phone", "+447911123456"),
        ("email", "sarah.j@example.com"),
        ("postcode", "SW1A 1AA"),
    } <= found
    amounts = [s for s in extract_slots("refund 120 EUR and €5,50 and 30 quid") if s.type == "amount"]
    assert [(s.value, s.currency) for s in amounts] == [("120.00", "EUR"), ("5.50", "EUR"), ("30.00", "GBP")]
    today = dt.date(2025, 6, 10)
    dates = [s.value for s in extract_slots("paid yesterday, due 2025-07-01, sent 05/06/2025", today=today)]
    assert dates == ["2025-06-09", "2025-07-01", "2025-06-05"]
    us = {(s.type, s.value) for s in extract_slots("zip code 90210, phone (415) 555-2671", region="US")}
    assert ("postcode", "90210") in us and ("phone", "+14155552671") in us


def test_slot_map_and_language() -> None:
    sig = analyze("order number 998877: I paid £40 for it")
    assert sig.slots["order_number"] == "998877"
    assert sig.slots["amount"] == "40.00" and sig.slots["currency"] == "GBP"
    langs = [
        s.language
        for s in analyze(
            ["where is my refund?", "Hola, mi pedido no ha llegado", "Wo ist meine Bestellung?", "ok", "!!!"]
        )
    ]
    assert langs == ["en", "es", "de", "en", "und"]


def test_record_is_json_ready_for_message_storage() -> None:
    import json

    sig = analyze("Can I speak to a manager about order #77812?")
    assert isinstance(sig, Signals)
    record = json.loads(json.dumps(sig.as_record()))
    assert record["escalate"] is True and record["question"] is True
    assert record["spans"][0]["type"] == "order_number"


def test_batch_and_single_agree() -> None:
    texts = ["I want a refund", "agent please"]
    assert [s.as_dict() for s in analyze(texts)] == [analyze(t).as_dict() for t in texts]
    assert analyze([]) == []


def test_an_accounts_trained_spam_model_replaces_the_rules(embedder, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from caredesk.ai.spam import SPAM_FILE, SpamClassifier

    from .conftest import SHARED_DATA

    rows = [json.loads(line) for line in (SHARED_DATA / "sms_spam" / "all.jsonl").open()][:600]
    texts = [r["text"] for r in rows]
    model = SpamClassifier.train(texts, [r["label"] == "spam" for r in rows], embedder.embed(texts))
    (tmp_path / "9").mkdir()
    model.save(tmp_path / "9" / SPAM_FILE)
    monkeypatch.setenv("CAREDESK_AI_MODELS", str(tmp_path))
    # SMS-marketing spam the rules alone let through; the account's model catches it.
    text = "PRIVATE! Your 2003 Account Statement for shows 800 un-redeemed S. I. M. points. Call 08715203694 Identifier Code: 40533 Expires 31/10/04"
    assert analyze(text).spam is False
    assert analyze(text, account_id=9).spam is True
    assert analyze("Hey, are we still meeting at 6 tonight?", account_id=9).spam is False


def test_a_spam_model_says_when_it_was_trained_on_other_vectors(embedder, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging
    import pickle

    from caredesk.ai.embedder import vectors_version
    from caredesk.ai.spam import SpamClassifier

    texts = [
        "WIN a FREE prize now, call 0800",
        "see you at 6?",
        "URGENT claim your cash",
        "thanks, got it",
    ] * 3
    model = SpamClassifier.train(texts, [i % 2 == 0 for i in range(len(texts))], embedder.embed(texts))
    assert model.parts["vectors"] == vectors_version()
    model.save(tmp_path / "current.pkl")
    with caplog.at_level(logging.WARNING, logger="caredesk.ai.spam"):
        SpamClassifier.load(tmp_path / "current.pkl")
    assert not caplog.records
    # A model saved before vectors were recorded (so fitted on fp32 ones) under another precision.
    data = pickle.loads((tmp_path / "current.pkl").read_bytes())  # noqa: S301 - our own file
    del data["parts"]["vectors"]
    (tmp_path / "old.pkl").write_bytes(pickle.dumps(data))
    with caplog.at_level(logging.WARNING, logger="caredesk.ai.spam"):
        loaded = SpamClassifier.load(tmp_path / "old.pkl")
    assert ("trained on" in caplog.text) == (vectors_version() != "all-MiniLM-L6-v2/fp32")
    assert loaded.score(["WIN a FREE prize now"], embedder.embed(["WIN a FREE prize now"]))[0] > 0.5


def test_an_accounts_batch_is_its_parts(embedder, trained_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A batch for an account with both models (embedded while the text signals are worked out)
    gives what the parts give one after the other: the account's intent and spam models on the
    batch's vectors, everything else as without an account."""
    import dataclasses
    import json
    import shutil

    from caredesk.ai.intent import load_intent_model
    from caredesk.ai.spam import SPAM_FILE, SPAM_THRESHOLD, SpamClassifier, load_spam_model

    from .conftest import SHARED_DATA

    rows = [json.loads(line) for line in (SHARED_DATA / "sms_spam" / "all.jsonl").open()]
    train = [r["text"] for r in rows[:300]]
    spam_model = SpamClassifier.train(
        train, [r["label"] == "spam" for r in rows[:300]], embedder.embed(train)
    )
    shutil.copytree(trained_model, tmp_path / "5" / "intent")
    spam_model.save(tmp_path / "5" / SPAM_FILE)
    banking = [json.loads(line)["text"] for line in (SHARED_DATA / "banking77" / "test.jsonl").open()]
    texts = banking[::40] + [r["text"] for r in rows[300:400]] + ["agent please", "I lost my job", ""]

    out = analyze(texts, account_id=5, models_dir=tmp_path)

    vectors = embedder.embed(texts)
    intents = load_intent_model(tmp_path / "5" / "intent").predict(texts, vectors)
    scores = load_spam_model(tmp_path / "5" / SPAM_FILE).score(texts, vectors)
    expected = []
    for text, sig, intent, score in zip(texts, analyze(texts), intents, scores, strict=True):
        esc = decide(text, sig.frustration)
        is_spam = score >= SPAM_THRESHOLD
        expected.append(
            dataclasses.replace(
                sig,
                spam=is_spam,
                spam_score=score,
                escalate=esc.escalate and not is_spam,
                escalate_reason=esc.reason if esc.escalate and not is_spam else None,
                intent=intent.label,
                intent_confidence=intent.confidence,
                out_of_scope=intent.out_of_scope,
            )
        )
    assert out == expected
    assert any(s.spam for s in out) and any(not s.spam for s in out)
