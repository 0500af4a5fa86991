"""Request bodies: strict types (so `false` is not an integer), unknown fields refused, sizes bounded."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Skill = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=65_536)]
Id = Annotated[int, Field(strict=True, ge=1, le=2**62)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginIn(Strict):
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class AccountPatch(Strict):
    name: Name | None = None
    settings: dict[str, Any] | None = None


class AgentIn(Strict):
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)]
    name: Name
    role: Literal["admin", "supervisor", "agent"] = "agent"
    password: Annotated[str, StringConstraints(min_length=8, max_length=1000)] | None = None
    skills: list[Skill] = Field(default_factory=list, max_length=100)
    languages: list[Annotated[str, StringConstraints(min_length=2, max_length=16)]] = Field(
        default_factory=list, max_length=50
    )
    capacity: Annotated[int, Field(strict=True, ge=0, le=1000)] = 5


class AgentPatch(Strict):
    name: Name | None = None
    role: Literal["admin", "supervisor", "agent"] | None = None
    password: Annotated[str, StringConstraints(min_length=8, max_length=1000)] | None = None
    skills: list[Skill] | None = Field(default=None, max_length=100)
    languages: list[Annotated[str, StringConstraints(min_length=2, max_length=16)]] | None = Field(
        default=None, max_length=50
    )
    capacity: Annotated[int, Field(strict=True, ge=0, le=1000)] | None = None
    availability: Literal["online", "away", "offline"] | None = None
    active: bool | None = None


class TeamIn(Strict):
    name: Name
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    skills: list[Skill] = Field(default_factory=list, max_length=100)
    agent_ids: list[Id] = Field(default_factory=list, max_length=1000)


class TeamPatch(Strict):
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    skills: list[Skill] | None = Field(default=None, max_length=100)
    agent_ids: list[Id] | None = Field(default=None, max_length=1000)


class InboxIn(Strict):
    name: Name
    channel: Literal[
        "webchat",
        "email",
        "twilio_sms",
        "twilio_whatsapp",
        "whatsapp_cloud",
        "telegram",
        "messenger",
        "voice",
        "api",
    ]
    config: dict[str, Any] = Field(default_factory=dict)
    automation: bool = False
    greeting: Annotated[str, StringConstraints(max_length=1000)] = ""


class InboxPatch(Strict):
    name: Name | None = None
    config: dict[str, Any] | None = None
    automation: bool | None = None
    greeting: Annotated[str, StringConstraints(max_length=1000)] | None = None


class TokenIn(Strict):
    name: Name


class ContactIn(Strict):
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)] | None = None
    phone: Annotated[str, StringConstraints(min_length=3, max_length=32)] | None = None
    language: Annotated[str, StringConstraints(min_length=2, max_length=16)] | None = None
    vip: bool = False
    attributes: dict[str, Any] = Field(default_factory=dict)
    labels: list[Label] = Field(default_factory=list, max_length=100)


class ContactPatch(Strict):
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    language: Annotated[str, StringConstraints(min_length=2, max_length=16)] | None = None
    vip: bool | None = None
    attributes: dict[str, Any] | None = None
    labels: list[Label] | None = Field(default=None, max_length=100)


class IdentityIn(Strict):
    kind: Literal["email", "phone", "whatsapp", "telegram", "messenger", "visitor", "api"]
    value: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    verified: bool = False


class MergeIn(Strict):
    survivor_id: Id
    merged_id: Id


class MessageIn(Strict):
    content: Text
    private: bool = False
    echo_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class AssignIn(Strict):
    agent_id: Id | None = None
    team_id: Id | None = None


class TransferIn(Strict):
    note: Annotated[str, StringConstraints(min_length=1, max_length=5000, strip_whitespace=True)]
    agent_id: Id | None = None
    team_id: Id | None = None


class SnoozeIn(Strict):
    until: dt.datetime = Field(strict=False)


class LabelsIn(Strict):
    add: list[Label] = Field(default_factory=list, max_length=50)
    remove: list[Label] = Field(default_factory=list, max_length=50)


class ConversationPatch(Strict):
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    subject: Annotated[str, StringConstraints(max_length=500)] | None = None
    custom_attributes: dict[str, Any] | None = None


class InboundFrom(Strict):
    kind: Literal["email", "phone", "whatsapp", "telegram", "messenger", "visitor", "api"] = "api"
    value: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    name: Annotated[str, StringConstraints(max_length=200)] | None = None


class InboundIn(Strict):
    """A customer's message posted by an integration into an inbox (the API channel)."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    sender: InboundFrom = Field(alias="from")
    text: Annotated[str, StringConstraints(min_length=1, max_length=65_536)]
    subject: Annotated[str, StringConstraints(max_length=500)] = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
