"""The care loop with the REAL AI layer: the demo shop's intent model (trained once per session from
caredesk/demo/intents.yaml, as `caredesk demo` does), the AI pipeline step's signals (escalation,
frustration, slots) and the knowledge base of caredesk/demo/articles.yaml. No stand-in understanding:
messages go through the inbound API and the worker's real pipeline (ai.signals -> conductor -> routing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from caredesk.automation.intents import ensure_intent_model, intent_folder
from caredesk.automation.knowledge import DONT_KNOW, install_articles, knowledge_base
from caredesk.demo.shop_api import DemoShop
from caredesk.knowledge.search import KnowledgeBase
from caredesk.services import Services
from tests.automation.conftest import Desk, make_desk
from tests.conftest import AccountFixture

MODEL_ACCOUNT = 1


@pytest.fixture(scope="session")
def demo_brains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, KnowledgeBase]]:
    root = tmp_path_factory.mktemp("demo-brains")
    assert ensure_intent_model(root, MODEL_ACCOUNT) is True
    assert ensure_intent_model(root, MODEL_ACCOUNT) is False  # up to date: not trained again
    assert install_articles(root, MODEL_ACCOUNT) == 5

    class _S:
        settings = type("S", (), {"data_dir": root})()
        extras: dict[str, object] = {}

    kb = knowledge_base(_S(), MODEL_ACCOUNT)
    assert kb is not None
    yield intent_folder(root, MODEL_ACCOUNT), kb


@pytest.fixture
async def real_desk(
    services: Services,
    client: httpx.AsyncClient,
    account: AccountFixture,
    shop: DemoShop,
    demo_brains: tuple[Path, KnowledgeBase],
) -> Desk:
    model, kb = demo_brains
    assert services.extras.get("understander") is None  # the real AI pipeline step runs
    mine = intent_folder(services.settings.data_dir, account.id)
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.symlink_to(model, target_is_directory=True)  # the model loads once per session
    services.extras["knowledge_bases"] = {account.id: kb}
    return await make_desk(services, client, account, shop)


async def test_order_status_self_served_by_the_real_model(real_desk: Desk) -> None:
    r = await real_desk.say("Hi, where is my order TH-10001?")
    bot = await real_desk.bot_messages(r["conversation_id"])
    assert len(bot) == 1 and "TH-10001" in bot[0] and "on its way" in bot[0]
    conv = await real_desk.conversation(r["conversation_id"])
    assert conv.assignee_id is None and conv.case_brief["intent"] == "order_status"


async def test_refund_within_and_above_policy(real_desk: Desk) -> None:
    r = await real_desk.say("I'd like a refund for TH-10001 please")
    cid = r["conversation_id"]
    assert "refund 39.90 EUR for order TH-10001" in (await real_desk.bot_messages(cid))[-1]
    await real_desk.say("yes")
    assert "refund of 39.90 EUR for TH-10001 is on its way" in (await real_desk.bot_messages(cid))[-1]
    await real_desk.set_online("priya", "maya")
    r2 = await real_desk.say(
        "I want my money back for order TH-10002, the tent leaks", sender="b@mail.example"
    )
    cid2 = r2["conversation_id"]
    assert "beyond what I'm allowed to do" in (await real_desk.bot_messages(cid2))[-1]
    conv = await real_desk.conversation(cid2)
    assert conv.assignee_id in (real_desk.agents["priya"], real_desk.agents["maya"])
    assert "above the limit of 50.00" in conv.case_brief["handoff_reason"]
    assert [x["amount"] for x in real_desk.shop.refunds] == [39.90]


async def test_address_change_with_confirmation(real_desk: Desk) -> None:
    r = await real_desk.say("I moved, can you send order TH-10003 to my new address?")
    cid = r["conversation_id"]
    assert "new delivery address" in (await real_desk.bot_messages(cid))[-1]
    await real_desk.say("Lindenstraße 12, 10969 Berlin")
    assert "Lindenstraße 12, 10969 Berlin?" in (await real_desk.bot_messages(cid))[-1]
    assert real_desk.shop.writes() == []
    await real_desk.say("yes")
    assert real_desk.shop.orders["TH-10003"]["address"] == "Lindenstraße 12, 10969 Berlin"


@pytest.mark.parametrize(
    "wording", ["I want a human", "can I speak to a real person please", "get me a representative"]
)
async def test_a_person_on_request(real_desk: Desk, wording: str) -> None:
    await real_desk.set_online("jonas")
    r = await real_desk.say(wording, sender="x@mail.example")
    bot = await real_desk.bot_messages(r["conversation_id"])
    assert len(bot) == 1 and "I'm the automated assistant" in bot[0]
    conv = await real_desk.conversation(r["conversation_id"])
    assert conv.case_brief["handoff_reason"] == "the customer asked for a person"


async def test_frustration_and_bereavement_go_to_people(real_desk: Desk) -> None:
    r = await real_desk.say("This is ridiculous!! Third time I'm asking, where is TH-10005??")
    assert "frustrating" in (await real_desk.bot_messages(r["conversation_id"]))[0]
    assert real_desk.shop.calls == []
    r2 = await real_desk.say(
        "My husband passed away and I need to close his account", sender="w@mail.example"
    )
    assert (await real_desk.bot_messages(r2["conversation_id"]))[0].startswith("I'm so sorry.")
    conv = await real_desk.conversation(r2["conversation_id"])
    assert conv.case_brief["handoff_reason"] == "a sensitive situation" and conv.priority == "high"


async def test_question_answered_from_the_knowledge_base_with_a_link(real_desk: Desk) -> None:
    r = await real_desk.say("What payment methods do you accept?")
    cid = r["conversation_id"]
    bot = await real_desk.bot_messages(cid)
    assert len(bot) == 1 and "PayPal" in bot[0]
    assert "https://help.trailhead.example/payment" in bot[0]
    conv = await real_desk.conversation(cid)
    assert conv.assignee_id is None and conv.custom_attributes["bot"].get("mode") != "handed_off"
    await real_desk.say("how long does shipping take to Germany?")
    assert "https://help.trailhead.example/shipping-times" in (await real_desk.bot_messages(cid))[-1]


async def test_unknown_question_says_so_and_offers_a_person(real_desk: Desk) -> None:
    await real_desk.set_online("jonas")
    r = await real_desk.say("What is the meaning of life?")
    cid = r["conversation_id"]
    assert (await real_desk.bot_messages(cid)) == [DONT_KNOW]
    await real_desk.say("yes please")
    conv = await real_desk.conversation(cid)
    assert conv.custom_attributes["bot"]["mode"] == "handed_off"
    assert conv.case_brief["handoff_reason"] == "the customer asked for a person"


async def test_order_number_given_once_survives_a_handoff_and_a_channel_switch(real_desk: Desk) -> None:
    await real_desk.set_online("jonas")
    r = await real_desk.say("Where is my order TH-10005?", sender="david@mail.example")
    await real_desk.say("I want to talk to a person", sender="david@mail.example")
    assert (await real_desk.conversation(r["conversation_id"])).case_brief["facts"][
        "order_number"
    ] == "TH-10005"
    e = await real_desk.say(
        "Hello again, any news on where my order is?", sender="david@mail.example", channel="email"
    )
    bot = await real_desk.bot_messages(e["conversation_id"])
    assert len(bot) == 1 and "TH-10005" in bot[0] and "order number" not in bot[0].lower()
