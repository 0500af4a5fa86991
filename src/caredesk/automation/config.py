"""The declared configuration of an account: connectors, actions, policies and escalation rules (YAML,
versioned).

Nothing here is hard-coded per business: `src/caredesk/demo/actions.yaml` is the worked example and
`docs/automation.md` the reference.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caredesk.automation.models import AutomationConfig
from caredesk.automation.templates import fields_of
from caredesk.platform.errors import Invalid

MAX_SOURCE = 256_000


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthSpec(Spec):
    type: Literal["none", "header", "bearer", "oauth2_client_credentials"] = "none"
    header: str = "Authorization"
    secret: str | None = None  # name of an encrypted secret (never the secret itself)
    token_url: str | None = None
    client_id: str | None = None
    scope: str | None = None


class ConnectorSpec(Spec):
    kind: Literal["http", "sql"]
    base_url: str = ""  # http; `${public_url}` is replaced by the server's public URL
    headers: dict[str, str] = Field(default_factory=dict)
    auth: AuthSpec = AuthSpec()
    timeout: float = Field(default=5.0, gt=0, le=120)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.2, ge=0, le=30)
    dsn_secret: str | None = None  # sql: the database URL is a secret (it carries a password)
    read_only: bool = True


class SlotSpec(Spec):
    prompt: str
    pattern: str | None = None  # extraction from free text and validation
    type: Literal["text", "number", "email"] = "text"
    normalize: Literal["upper", "lower", "strip"] | None = "strip"
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str] | None = None
    fact: bool = True  # remember it on the conversation and contact (never ask twice)
    required: bool = True
    invalid: str = "That doesn't look right: {prompt}"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from exc
        return v


class CallSpec(Spec):
    connector: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = ""
    query: dict[str, str] = Field(default_factory=dict)
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    sql: str | None = None
    result: str | None = None  # dotted path to keep from the response


class LookupSpec(Spec):
    """A read before the main call that fills slots from the business's system (e.g. the order total)."""

    call: CallSpec
    provide: dict[str, str] = Field(default_factory=dict)  # slot -> dotted path in the lookup result


class PolicySpec(Spec):
    max_amount: float | None = None
    amount_slot: str = "amount"
    once_per: str | None = None  # a slot: at most one successful run per value (e.g. per order)
    approver_role: Literal["supervisor", "admin"] = "supervisor"  # who may go beyond the limits


class ActionSpec(Spec):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    title: str
    description: str = ""
    intents: list[str] = Field(default_factory=list)
    slots: dict[str, SlotSpec] = Field(default_factory=dict)
    lookup: LookupSpec | None = None
    call: CallSpec
    changes_data: bool = False
    confirm: str | None = None
    reply: str
    failure_reply: str = "I couldn't complete that myself, so I'm bringing in a colleague who can."
    promise: str | None = None
    policy: PolicySpec = PolicySpec()
    bot: bool = True  # offered to the bot; agents always see it as a button

    @model_validator(mode="after")
    def _consistent(self) -> ActionSpec:
        if self.changes_data and not self.confirm:
            raise ValueError(f"action {self.name}: an action that changes data needs a confirm text")
        known = (
            set(self.slots)
            | {"result", "contact", "lookup"}
            | (set(self.lookup.provide) if self.lookup else set())
        )
        for text in (self.reply, self.confirm or "", self.promise or "", self.call.path):
            for f in fields_of(text):
                if f.split(".", 1)[0] not in known:
                    raise ValueError(f"action {self.name}: {{{f}}} is not a slot or result field")
        if self.policy.once_per and self.policy.once_per not in self.slots:
            raise ValueError(f"action {self.name}: once_per names an unknown slot")
        return self


class EscalationSpec(Spec):
    frustration: float = Field(default=0.7, ge=0, le=1)
    low_confidence: float = Field(default=0.5, ge=0, le=1)
    low_confidence_strikes: int = Field(default=2, ge=1, le=10)
    loop_repeats: int = Field(default=2, ge=2, le=10)
    vip: bool = True
    callback_above_minutes: float = Field(default=15, ge=0)


class AutomationSpec(Spec):
    version: int = 1
    connectors: dict[str, ConnectorSpec] = Field(default_factory=dict)
    actions: list[ActionSpec] = Field(default_factory=list)
    escalation: EscalationSpec = EscalationSpec()
    # intent -> skill a team must have; an intent absent here is its own skill name.
    intent_skills: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> AutomationSpec:
        names = [a.name for a in self.actions]
        if len(names) != len(set(names)):
            raise ValueError("action names must be unique")
        for a in self.actions:
            for call in (a.call, a.lookup.call if a.lookup else None):
                if call is not None and call.connector not in self.connectors:
                    raise ValueError(f"action {a.name}: unknown connector {call.connector!r}")
        return self

    def action(self, name: str) -> ActionSpec | None:
        return next((a for a in self.actions if a.name == name), None)

    def actions_for_intent(self, intent: str) -> list[ActionSpec]:
        return [a for a in self.actions if intent in a.intents and a.bot]


def parse(source: str) -> AutomationSpec:
    """YAML text -> validated spec; any problem is an `Invalid` with a readable reason."""
    if len(source) > MAX_SOURCE:
        raise Invalid("configuration is too large")
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise Invalid(f"configuration is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise Invalid("configuration must be a YAML mapping")
    try:
        return AutomationSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(
            f"configuration error at {where or 'top level'}: {first['msg']}", errors=len(exc.errors())
        ) from exc


@functools.lru_cache(maxsize=256)
def _parse_cached(digest: str, source: str) -> AutomationSpec:
    return parse(source)


def save_config(session: Session, account_id: int, source: str, created_by: str = "") -> int:
    """Validate and store a new version; returns the version number. Older versions are kept."""
    parse(source)
    current = (
        session.execute(
            select(func.max(AutomationConfig.version)).where(AutomationConfig.account_id == account_id)
        ).scalar()
        or 0
    )
    row = AutomationConfig(
        account_id=account_id, version=current + 1, source=source, created_by=created_by[:64]
    )
    session.add(row)
    session.flush()
    return row.version


def active_source(session: Session, account_id: int) -> tuple[int, str] | None:
    row = session.execute(
        select(AutomationConfig.version, AutomationConfig.source)
        .where(AutomationConfig.account_id == account_id)
        .order_by(AutomationConfig.version.desc())
        .limit(1)
    ).first()
    return None if row is None else (int(row[0]), str(row[1]))


def active_config(session: Session, account_id: int) -> AutomationSpec | None:
    found = active_source(session, account_id)
    if found is None:
        return None
    return _parse_cached(hashlib.sha256(found[1].encode()).hexdigest(), found[1])
