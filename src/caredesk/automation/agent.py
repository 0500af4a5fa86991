"""An agent runs an action from the workspace: the same actions as the bot, the agent's own limits
(`policy.approver_role`), a timeline entry, the case brief updated, the run audited (`action_runs`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.actors import Actor
from caredesk.automation import config as cfg
from caredesk.automation.actions import Outcome, actions_json, run_action
from caredesk.automation.brief import update_brief
from caredesk.automation.facts import known_facts, remember
from caredesk.automation.models import ActionRun
from caredesk.contacts.models import Contact
from caredesk.conversations.actions import add_activity, get_conversation
from caredesk.platform.models import utcnow


def panel(s: Session, account_id: int, conversation_id: int) -> dict[str, Any]:
    """What the customer panel's actions section shows: actions with known slot values, facts, runs."""
    conv = get_conversation(s, account_id, conversation_id)
    contact = s.get(Contact, conv.contact_id)
    known = known_facts(conv, contact)
    runs = list(
        s.execute(
            select(ActionRun)
            .where(ActionRun.account_id == account_id, ActionRun.conversation_id == conversation_id)
            .order_by(ActionRun.id.desc())
            .limit(20)
        ).scalars()
    )
    spec = cfg.active_config(s, account_id)
    latest = None
    if runs:  # the latest run stays visible when the conversation view is re-rendered by live updates
        r = runs[0]
        a = spec.action(r.action) if spec else None
        fields = {**r.slots, **{k: v for k, v in (r.result or {}).items() if not isinstance(v, dict | list)}}
        latest = {
            "title": a.title if a else r.action,
            "status": r.status,
            "reason": r.error or "",
            "fields": {k: v for k, v in fields.items() if not isinstance(v, dict | list)},
        }
    return {
        "conversation_id": conversation_id,
        "latest": latest,
        "actions": actions_json(spec, known),
        "facts": known,
        "contact": {"name": contact.name if contact else "", "email": contact.email if contact else None},
        "runs": [
            {"id": r.id, "action": r.action, "status": r.status, "actor_type": r.actor_type, "error": r.error}
            for r in runs
        ],
    }


async def run_for_agent(
    services: Any, actor: Actor, conversation_id: int, name: str, slots: dict[str, Any]
) -> Outcome:
    data = await services.db.read(panel, actor.account_id, conversation_id)
    spec = await services.db.read(cfg.active_config, actor.account_id)
    action = spec.action(name) if spec else None
    out = await run_action(
        services,
        actor,
        name,
        {**data["facts"], **slots},
        conversation_id=conversation_id,
        contact=data["contact"],
    )

    def w(s: Session) -> None:
        conv = get_conversation(s, actor.account_id, conversation_id)
        who = actor.name or actor.kind
        title = action.title if action else name
        why = f" ({out.reason})" if out.reason else ""
        add_activity(
            s,
            conv,
            f"{who} ran {title}: {out.status}{why}",
            {"action": "action_run", "run_id": out.run_id, "status": out.status},
        )
        ok = out.status == "ok" and action is not None
        update_brief(
            conv,
            step=(who, f"{title} by {who}: {out.status}{why}"),
            promise=(who, out.promise) if out.promise else None,
            verified={k: v for k, v in out.slots.items() if action and k in action.slots} if ok else None,
        )
        if ok and action is not None:
            remember(
                s, conv, {k: v for k, v in out.slots.items() if k in action.slots and action.slots[k].fact}
            )
        conv.updated_at = utcnow()

    await services.db.write(w)
    return out
