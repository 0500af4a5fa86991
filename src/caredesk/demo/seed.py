"""Seeds the demo business: agents, teams, inboxes, contacts across channels and past conversations."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.actions import create_account, create_agent, create_inbox, create_team
from caredesk.accounts.actors import system_actor
from caredesk.accounts.models import Account, Agent
from caredesk.contacts.models import Contact, Identity
from caredesk.conversations.models import Conversation, ConversationLabel, Message
from caredesk.platform.db import Database
from caredesk.platform.models import utcnow
from caredesk.platform.security import new_token

DEMO_SLUG = "demo"
DEMO_PASSWORD = "caredesk-demo"  # noqa: S105 - the published demo login, not a secret
ADMIN_EMAIL = "admin@demo.caredesk.test"

AGENTS = [
    ("Maya Okafor", "maya@demo.caredesk.test", "supervisor", ["orders", "returns", "billing"], ["en", "fr"]),
    ("Jonas Weber", "jonas@demo.caredesk.test", "agent", ["orders", "shipping"], ["en", "de"]),
    ("Priya Raman", "priya@demo.caredesk.test", "agent", ["returns", "refunds"], ["en"]),
    ("Lucas Moreau", "lucas@demo.caredesk.test", "agent", ["billing", "account"], ["en", "fr"]),
]

FIRST = [
    "Anna",
    "Ben",
    "Chloe",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Isla",
    "Jamal",
    "Kenji",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
    "Paula",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
    "Vera",
    "Will",
    "Yara",
    "Zoe",
]
LAST = [
    "Schmidt",
    "Nguyen",
    "Garcia",
    "Kowalski",
    "Haddad",
    "Rossi",
    "Okafor",
    "Lindqvist",
    "Dubois",
    "Patel",
    "Murphy",
    "Silva",
    "Tanaka",
    "Novak",
    "Brown",
]

# (intent, label, customer's words, agent's reply, follow-up)
CASES: list[tuple[str, str, str, str, str | None]] = [
    (
        "order_status",
        "orders",
        "Hi, where is my order {order}? It said 3-5 days and it's been a week.",
        "Hi {first}, I checked {order}: it left our warehouse on Monday and DHL shows it arriving tomorrow before noon. Here is the tracking link: https://track.example/{order}",
        "Great, thanks for checking!",
    ),
    (
        "return",
        "returns",
        "I'd like to return the hiking boots from order {order}, they're a size too small.",
        "No problem, {first}. I've created a free return label for {order} and emailed it to you. Once we scan the parcel I'll send the size 43 right away.",
        "Perfect, label received.",
    ),
    (
        "refund",
        "refunds",
        "I returned the tent two weeks ago and still no refund for {order}.",
        "You're right to chase this, {first}. The return arrived on the 3rd and the refund got stuck; I've released it just now: 189.00 EUR, back on your card in 2-3 days.",
        None,
    ),
    (
        "address_change",
        "orders",
        "Can I change the delivery address for {order}? I'm moving to Lindenstraße 12, 10969 Berlin.",
        "Done, {first}: {order} now goes to Lindenstraße 12, 10969 Berlin. It hasn't shipped yet, so nothing else to do.",
        "Thank you so much",
    ),
    (
        "billing",
        "billing",
        "I was charged twice for order {order}!",
        "I see both charges, {first}. The second one is a pre-authorisation that your bank will release within 5 days; I've asked our payment provider to release it today as well.",
        "ok, I'll keep an eye on it",
    ),
    (
        "password",
        "account",
        "I can't log in, the password reset email never arrives.",
        "{first}, I've sent a new reset link to your address and checked it didn't bounce. It may land in spam; it's valid for one hour.",
        "Got it now, thanks.",
    ),
    (
        "damaged",
        "returns",
        "The stove in order {order} arrived with a broken valve. Really disappointed.",
        "That's not how it should arrive, {first}, sorry. I've shipped a replacement by express today (no need to return the broken one) and you'll have tracking by email tonight.",
        None,
    ),
    (
        "product_question",
        "presales",
        "Is the Alpine 2 tent OK for snow, or do I need the 4-season one?",
        "For light snow the Alpine 2 is fine, {first}; if you camp above the tree line in winter, the Summit 4 handles snow loads much better. Happy to compare both for your trip.",
        "Summit 4 it is then!",
    ),
]


def _name(rng: random.Random) -> tuple[str, str]:
    first = rng.choice(FIRST)
    return first, f"{first} {rng.choice(LAST)}"


def seed_demo(
    db: Database, conversations: int = 300, seed: int = 7, *, data_dir: Path | None = None
) -> dict[str, Any]:
    """With `data_dir` (the server's), also trains the demo's intent model and indexes its help articles
    there (once; again only when the examples change)."""
    existing = db.read_sync(lambda s: s.execute(select(Account.id).where(Account.slug == DEMO_SLUG)).scalar())
    if existing is not None:
        info: dict[str, Any] = {"existing": True, "account_id": existing, "admin_email": ADMIN_EMAIL}
    else:
        info = db.write_sync(_seed, conversations, seed)
    if data_dir is not None:
        from caredesk.automation.demo import install_demo_intelligence

        info.update(install_demo_intelligence(data_dir, int(info["account_id"])))
    return info


def _seed(s: Session, n_conversations: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    acc = create_account(
        s,
        "Trailhead Outfitters",
        DEMO_SLUG,
        {"timezone": "Europe/Berlin", "business_hours": {"mon-fri": "08:00-20:00", "sat": "10:00-16:00"}},
    )
    actor = system_actor(acc.id)
    admin = create_agent(
        s,
        actor,
        email=ADMIN_EMAIL,
        name="Alex Admin",
        role="admin",
        password=DEMO_PASSWORD,
        skills=["orders"],
        capacity=3,
    )
    agents: list[Agent] = [admin]
    for name, email, role, skills, langs in AGENTS:
        agents.append(
            create_agent(
                s,
                actor,
                email=email,
                name=name,
                role=role,
                password=DEMO_PASSWORD,
                skills=skills,
                languages=langs,
                capacity=6,
            )
        )
    teams = [
        create_team(
            s,
            actor,
            "Orders & Delivery",
            "Where is my order, address changes, shipping",
            ["orders", "shipping"],
            [agents[1].id, agents[2].id],
        )[0],
        create_team(
            s,
            actor,
            "Returns & Refunds",
            "Returns, replacements, refunds",
            ["returns", "refunds"],
            [agents[1].id, agents[3].id],
        )[0],
        create_team(
            s,
            actor,
            "Billing & Account",
            "Payments, invoices, logins",
            ["billing", "account"],
            [agents[1].id, agents[4].id],
        )[0],
    ]
    team_for = {
        "orders": teams[0],
        "shipping": teams[0],
        "returns": teams[1],
        "refunds": teams[1],
        "billing": teams[2],
        "account": teams[2],
        "presales": teams[0],
    }
    inboxes = [
        create_inbox(
            s,
            actor,
            name="Website chat",
            channel="webchat",
            automation=True,
            greeting="Hi! Ask us anything: a real person is always one tap away.",
        ),
        create_inbox(
            s,
            actor,
            name="support@trailhead.example",
            channel="email",
            config={"address": "support@trailhead.example"},
        ),
        create_inbox(
            s, actor, name="SMS +49 30 1234567", channel="twilio_sms", config={"phone_number": "+49301234567"}
        ),
        create_inbox(
            s, actor, name="WhatsApp", channel="whatsapp_cloud", config={"phone_number": "+49301234568"}
        ),
        create_inbox(s, actor, name="Shop API", channel="api"),
    ]
    s.flush()
    now = utcnow()
    contacts: list[tuple[Contact, dict[str, str]]] = []
    for i in range(max(10, n_conversations // 2)):
        first, full = _name(rng)
        email = f"{first.lower()}.{i}@mail.example"
        phone = f"+49151{rng.randint(1000000, 9999999)}"
        c = Contact(
            account_id=acc.id,
            name=full,
            email=email,
            phone=phone,
            attributes={"customer_since": 2018 + rng.randint(0, 7)},
            facts={},
            labels=["vip"] if rng.random() < 0.05 else [],
            vip=rng.random() < 0.05,
            language="en",
            created_at=now - dt.timedelta(days=rng.randint(30, 400)),
            updated_at=now,
        )
        s.add(c)
        s.flush()
        ids = {"email": email, "phone": phone, "whatsapp": phone, "visitor": new_token(nbytes=12)}
        for kind, value in ids.items():
            s.add(
                Identity(
                    account_id=acc.id, contact_id=c.id, kind=kind, value=value, verified=kind != "visitor"
                )
            )
        contacts.append((c, ids))
    created = 0
    for _ in range(n_conversations):
        c, ids = rng.choice(contacts)
        inbox = rng.choices(inboxes, weights=[5, 4, 1, 2, 1])[0]
        intent, label, text, reply, follow = rng.choice(CASES)
        order = f"TH-{rng.randint(10000, 99999)}"
        first = c.name.split()[0]
        start = now - dt.timedelta(days=rng.uniform(0, 30), minutes=rng.randint(0, 600))
        roll = rng.random()
        status = "resolved" if roll < 0.7 else "open" if roll < 0.9 else "pending"
        assignee = rng.choice(agents[1:]) if status != "open" or rng.random() < 0.6 else None
        opening = text.format(order=order, first=first)
        conv = Conversation(
            account_id=acc.id,
            contact_id=c.id,
            inbox_id=inbox.id,
            public_token=new_token(nbytes=15),
            status=status,
            priority="high" if intent in ("damaged", "billing") else "normal",
            subject=opening[:60] if inbox.channel == "email" else "",
            assignee_id=assignee.id if assignee else None,
            team_id=team_for[label].id,
            custom_attributes={"order": order},
            case_brief={},
            signals={"intent": intent},
            created_at=start,
            updated_at=start,
            last_activity_at=start,
            message_count=0,
        )
        s.add(conv)
        s.flush()
        msgs: list[tuple[str, str, int | None, str]] = [("incoming", "contact", c.id, opening)]
        if status != "open" or assignee is not None:
            msgs.append(
                (
                    "outgoing",
                    "agent",
                    assignee.id if assignee else agents[1].id,
                    reply.format(order=order, first=first),
                )
            )
            if follow:
                msgs.append(("incoming", "contact", c.id, follow))
        t = start
        for kind, sender_type, sender_id, content in msgs:
            t = t + dt.timedelta(minutes=rng.randint(1, 45))
            s.add(
                Message(
                    account_id=acc.id,
                    conversation_id=conv.id,
                    inbox_id=inbox.id,
                    type=kind,
                    sender_type=sender_type,
                    sender_id=sender_id,
                    content=content,
                    status="delivered" if kind == "outgoing" else "received",
                    channel_message_id=f"demo-{conv.id}-{len(content)}-{t.timestamp():.0f}"
                    if kind == "incoming"
                    else None,
                    meta={},
                    signals={},
                    created_at=t,
                )
            )
        conv.message_count = len(msgs)
        conv.last_activity_at = t
        conv.first_reply_at = start + dt.timedelta(minutes=5) if len(msgs) > 1 else None
        conv.waiting_since = None if len(msgs) > 1 and status != "open" else start
        conv.resolved_at = t if status == "resolved" else None
        s.add(ConversationLabel(conversation_id=conv.id, label=label, account_id=acc.id))
        created += 1
    for a in agents[:3]:
        a.availability = "online"
    from caredesk.automation.demo import install_demo_automation  # the demo shop's connector and actions
    from caredesk.settings import get_settings

    install_demo_automation(s, acc.id, get_settings().secret_key)
    return {
        "existing": False,
        "account_id": acc.id,
        "admin_email": ADMIN_EMAIL,
        "conversations": created,
        "contacts": len(contacts),
        "inboxes": {i.channel: i.public_token for i in inboxes},
    }
