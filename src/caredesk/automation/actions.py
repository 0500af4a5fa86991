"""Running a declared action: validate slots, read what the policy needs, check the policy, call the
connector, audit the run. Used by the bot conductor and by agents (the buttons in the workspace)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.accounts.actors import RANK, Actor
from caredesk.automation import config as cfg
from caredesk.automation.connectors import ConnectorError, HttpConnector, SqlConnector, path_quote
from caredesk.automation.models import ActionRun
from caredesk.automation.secrets import get_secret
from caredesk.automation.slots import SlotInvalid, missing, validated
from caredesk.automation.templates import MissingValue, lookup, render, render_value
from caredesk.platform.audit import audit
from caredesk.platform.errors import Invalid, NotFound
from caredesk.platform.events import record_event

log = logging.getLogger(__name__)

OK, FAILED, REFUSED = "ok", "failed", "refused"


@dataclass
class Outcome:
    status: str  # ok | failed | refused
    action: str
    reply: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    slots: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why it failed or was refused (for the case brief and the agent)
    promise: str | None = None
    run_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "action": self.action,
            "reply": self.reply,
            "result": self.result,
            "slots": self.slots,
            "reason": self.reason,
            "promise": self.promise,
            "run_id": self.run_id,
        }


def _secret_names(spec: cfg.AutomationSpec, action: cfg.ActionSpec) -> set[str]:
    names: set[str] = set()
    for call in (action.call, action.lookup.call if action.lookup else None):
        if call is None:
            continue
        c = spec.connectors[call.connector]
        names |= {n for n in (c.auth.secret, c.dsn_secret) if n}
    return names


@dataclass
class _Prepared:
    spec: cfg.AutomationSpec
    action: cfg.ActionSpec
    secrets: dict[str, str]
    previous: ActionRun | None
    used_policy_key: bool


def _prepare(
    session: Session,
    account_id: int,
    secret_key: str,
    name: str,
    idempotency_key: str | None,
    policy_value: str | None,
) -> _Prepared:
    spec = cfg.active_config(session, account_id)
    action = spec.action(name) if spec else None
    if spec is None or action is None:
        raise NotFound(f"action {name!r} not found")
    secrets = {n: get_secret(session, account_id, secret_key, n) for n in _secret_names(spec, action)}
    previous = None
    if idempotency_key:
        previous = session.execute(
            select(ActionRun).where(ActionRun.idempotency_key == idempotency_key)
        ).scalar_one_or_none()
    used = False
    if action.policy.once_per and policy_value is not None:
        used = (
            session.execute(
                select(ActionRun.id)
                .where(
                    ActionRun.account_id == account_id,
                    ActionRun.action == name,
                    ActionRun.policy_key == str(policy_value),
                    ActionRun.status == OK,
                )
                .limit(1)
            ).first()
            is not None
        )
    return _Prepared(spec, action, secrets, previous, used)


async def _call(
    services: Any,
    spec: cfg.AutomationSpec,
    call: cfg.CallSpec,
    values: dict[str, Any],
    secrets: dict[str, str],
    key: str | None,
) -> dict[str, Any]:
    conn_spec = spec.connectors[call.connector]
    if conn_spec.kind == "sql":
        sql = SqlConnector(call.connector, conn_spec, secrets=secrets)
        data: Any = await sql.query(
            call.sql or "", {k: v for k, v in values.items() if not isinstance(v, dict)}
        )
    else:
        transports = services.extras.get("connector_transports", {}) if services is not None else {}
        http = HttpConnector(
            call.connector,
            conn_spec,
            secrets=secrets,
            public_url=services.settings.public_url if services else "",
            transport=transports.get(call.connector),
        )
        path = render(call.path, values, quote=path_quote)
        query = {k: render(v, values) for k, v in call.query.items()}
        body = render_value(call.json_body, values) if call.json_body is not None else None
        data = await http.call(call.method, path, query=query, json=body, idempotency_key=key)
    if call.result:
        data = lookup({"r": data}, "r." + call.result)
    return data if isinstance(data, dict) else {"value": data}


def _allowed_beyond_policy(actor: Actor, action: cfg.ActionSpec) -> bool:
    if actor.kind == "token":
        return False  # an integration acts within policy; approvals are a person's call
    return actor.kind == "agent" and RANK.get(actor.role, 0) >= RANK[action.policy.approver_role]


def _record(
    session: Session,
    account_id: int,
    actor: Actor,
    conversation_id: int | None,
    out: Outcome,
    key: str | None,
    policy_key: str | None,
) -> int:
    run = ActionRun(
        account_id=account_id,
        conversation_id=conversation_id,
        action=out.action,
        actor_type=actor.kind,
        actor_id=actor.id,
        slots=out.slots,
        status=out.status,
        result=out.result,
        error=out.reason or None,
        policy_key=policy_key if out.status == OK else None,
        idempotency_key=key,
    )
    session.add(run)
    session.flush()
    audit(
        session,
        account_id,
        actor.audit_ref,
        f"action.{out.status}",
        "action_run",
        run.id,
        {"action": out.action, "conversation_id": conversation_id, "reason": out.reason},
    )
    record_event(
        session,
        account_id,
        "action.executed",
        {
            **out.as_json(),
            "run_id": run.id,
            "conversation_id": conversation_id,
            "actor": {"kind": actor.kind, "id": actor.id, "name": actor.name},
        },
        conversation_id=conversation_id,
    )
    return run.id


async def run_action(
    services: Any,
    actor: Actor,
    name: str,
    slot_values: dict[str, Any],
    *,
    conversation_id: int | None = None,
    idempotency_key: str | None = None,
    contact: dict[str, Any] | None = None,
) -> Outcome:
    """Execute an action within policy; every outcome (ok, failed, refused) is recorded and audited."""
    db = services.db
    pre_spec = await db.read(lambda s: cfg.active_config(s, actor.account_id))
    pre_action = pre_spec.action(name) if pre_spec else None
    if pre_action is None:
        raise NotFound(f"action {name!r} not found")
    try:
        values = validated(pre_action, slot_values)
    except SlotInvalid as exc:
        raise Invalid(str(exc)) from exc
    lookup_provides = set(pre_action.lookup.provide) if pre_action.lookup else set()
    absent = missing(pre_action, values, lookup_provides)
    if absent:
        raise Invalid(f"missing: {', '.join(absent)}", missing=absent)
    policy_value = values.get(pre_action.policy.once_per) if pre_action.policy.once_per else None
    prep = await db.read(
        _prepare,
        actor.account_id,
        services.settings.secret_key,
        name,
        idempotency_key,
        None if policy_value is None else str(policy_value),
    )
    action, spec = prep.action, prep.spec
    if prep.previous is not None:
        p = prep.previous
        return Outcome(
            p.status,
            p.action,
            _reply(action, p.slots, p.result, contact) if p.status == OK else action.failure_reply,
            p.result,
            p.slots,
            p.error or "",
            _promise(action, p.slots, p.result, contact),
            p.id,
        )
    key = idempotency_key
    out = Outcome(OK, name, slots=values)
    try:
        if action.lookup is not None:
            found = await _call(services, spec, action.lookup.call, values, prep.secrets, None)
            for slot, path in action.lookup.provide.items():
                if values.get(slot) in (None, ""):
                    with contextlib.suppress(MissingValue):
                        values[slot] = lookup(found, path)
            values["lookup"] = found
        refusal = _policy_refusal(action, values, prep.used_policy_key)
        if refusal and not _allowed_beyond_policy(actor, action):
            out.status, out.reason = REFUSED, refusal
        else:
            out.result = await _call(services, spec, action.call, values, prep.secrets, key or None)
            out.reply = _reply(action, values, out.result, contact)
            out.promise = _promise(action, values, out.result, contact)
    except ConnectorError as exc:
        out.status, out.reason = FAILED, str(exc)
        out.result = {"error": exc.data} if exc.data is not None else {}
        log.info("action %s failed: %s", name, exc)
    if out.status != OK:
        out.reply = action.failure_reply
    out.slots = {k: v for k, v in values.items() if k != "lookup"}
    pkey = None if policy_value is None else str(policy_value)
    out.run_id = await db.write(_record, actor.account_id, actor, conversation_id, out, key, pkey)
    return out


def _policy_refusal(action: cfg.ActionSpec, values: dict[str, Any], used: bool) -> str:
    p = action.policy
    if p.max_amount is not None:
        try:
            amount = float(values.get(p.amount_slot) or 0)
        except (TypeError, ValueError):
            amount = 0.0
        if amount > p.max_amount:
            return f"{amount:.2f} is above the limit of {p.max_amount:.2f} for {action.title.lower()}"
    if used:
        return f"{action.title} was already done once for {values.get(p.once_per or '')}"
    return ""


def _values(values: dict[str, Any], result: dict[str, Any], contact: dict[str, Any] | None) -> dict[str, Any]:
    return {**values, "result": result, "contact": contact or {}}


def _reply(
    action: cfg.ActionSpec, values: dict[str, Any], result: dict[str, Any], contact: dict[str, Any] | None
) -> str:
    try:
        return render(action.reply, _values(values, result, contact))
    except MissingValue:
        return f"{action.title}: done."


def _promise(
    action: cfg.ActionSpec, values: dict[str, Any], result: dict[str, Any], contact: dict[str, Any] | None
) -> str | None:
    if not action.promise:
        return None
    try:
        return render(action.promise, _values(values, result, contact))
    except MissingValue:
        return None


def confirm_text(
    action: cfg.ActionSpec, values: dict[str, Any], contact: dict[str, Any] | None = None
) -> str:
    try:
        return render(action.confirm or "Shall I go ahead?", _values(values, {}, contact))
    except MissingValue:
        return f"Shall I go ahead with: {action.title.lower()}?"


def actions_json(
    spec: cfg.AutomationSpec | None, known: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Actions as the workspace shows them: each slot with the value already known (never asked again)."""
    if spec is None:
        return []
    known = known or {}
    out = []
    for a in spec.actions:
        out.append(
            {
                "name": a.name,
                "title": a.title,
                "description": a.description,
                "intents": a.intents,
                "changes_data": a.changes_data,
                "confirm": a.confirm,
                "policy": a.policy.model_dump(),
                "slots": [
                    {
                        "name": n,
                        "prompt": s.prompt,
                        "type": s.type,
                        "required": s.required and not (a.lookup and n in a.lookup.provide),
                        "value": known.get(n),
                    }
                    for n, s in a.slots.items()
                ],
            }
        )
    return out


async def preview_action(
    services: Any, account_id: int, name: str, slot_values: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """Before asking the customer to confirm: run the read-only lookup and check the policy.
    Returns (values with looked-up slots, refusal reason or "")."""
    prep = await services.db.read(_prepare, account_id, services.settings.secret_key, name, None, None)
    action, spec = prep.action, prep.spec
    values = validated(action, slot_values)
    if action.lookup is not None:
        found = await _call(services, spec, action.lookup.call, values, prep.secrets, None)
        for slot, path in action.lookup.provide.items():
            if values.get(slot) in (None, ""):
                with contextlib.suppress(MissingValue):
                    values[slot] = lookup(found, path)
    used = False
    if action.policy.once_per and values.get(action.policy.once_per) is not None:
        used = (
            await services.db.read(
                _prepare,
                account_id,
                services.settings.secret_key,
                name,
                None,
                str(values[action.policy.once_per]),
            )
        ).used_policy_key
    return values, _policy_refusal(action, values, used)
