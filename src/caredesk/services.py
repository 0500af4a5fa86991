"""The running system's parts, built once per process and handed to the web layer and job handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from caredesk.platform.bus import Bus, EventHub
from caredesk.platform.db import Database
from caredesk.platform.jobs import JobRegistry
from caredesk.platform.storage import Storage
from caredesk.platform.worker import Worker
from caredesk.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    bus: Bus
    hub: EventHub
    registry: JobRegistry
    storage: Storage
    worker: Worker | None = None
    # Channel senders by channel name (see caredesk.channels); chosen in caredesk.app only.
    senders: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
