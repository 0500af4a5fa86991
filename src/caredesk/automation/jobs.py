"""Automation in the message pipeline: the bot conductor runs after the AI layer and before routing."""

from __future__ import annotations

from caredesk.automation.conductor import conduct
from caredesk.conversations.pipeline import Pipeline


def install(pipeline: Pipeline) -> None:
    pipeline.add("automation.conductor", conduct)
