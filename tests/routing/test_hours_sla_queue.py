from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from caredesk.conversations.models import Conversation
from caredesk.routing.hours import add_business_seconds, business_seconds, is_open, next_open, parse_hours
from caredesk.routing.sla import clocks, worst

# The whole module runs on PostgreSQL too (make test), not only on SQLite.
pytestmark = pytest.mark.postgres

BERLIN = {"timezone": "Europe/Berlin", "business_hours": {"mon-fri": "08:00-20:00", "sat": "10:00-16:00"}}


def utc(*a: int) -> dt.datetime:
    return dt.datetime(*a)  # naive UTC, as stored


def test_business_time_skips_nights_and_sundays() -> None:
    h = parse_hours(BERLIN)
    # Friday 2025-01-17 19:00 UTC = 20:00 Berlin (closed) .. Monday 08:00 UTC = 09:00 Berlin
    fri, mon = utc(2025, 1, 17, 19, 0), utc(2025, 1, 20, 8, 0)
    assert business_seconds(h, fri, mon) == (6 + 1) * 3600  # Saturday 10-16 + Monday 08-09 local
    assert not is_open(h, utc(2025, 1, 19, 12, 0))  # Sunday
    assert next_open(h, utc(2025, 1, 19, 12, 0)) == utc(2025, 1, 20, 7, 0)  # Monday 08:00 Berlin
    # Adding business time is the inverse of measuring it.
    due = add_business_seconds(h, fri, 7 * 3600)
    assert due == mon and business_seconds(h, fri, due) == 7 * 3600


def test_no_hours_means_always_open() -> None:
    h = parse_hours({})
    assert h.always_open and business_seconds(h, utc(2025, 1, 1), utc(2025, 1, 2)) == 86400


def _conv(**kw: Any) -> Conversation:
    base = {
        "status": "open",
        "created_at": utc(2025, 1, 20, 8, 0),
        "first_reply_at": None,
        "waiting_since": utc(2025, 1, 20, 8, 0),
    }
    return Conversation(**{**base, **kw})


def test_sla_warns_before_breach_in_business_time() -> None:
    h = parse_hours(BERLIN)
    policy = {"first_response_minutes": 60, "resolution_minutes": 24 * 60, "warn_at": 0.8}
    c = _conv()
    assert worst(clocks(c, policy, h, utc(2025, 1, 20, 8, 30))) == "ok"
    assert worst(clocks(c, policy, h, utc(2025, 1, 20, 8, 50))) == "warning"
    assert worst(clocks(c, policy, h, utc(2025, 1, 20, 9, 1))) == "breached"
    # Friday evening: the clock stops overnight, so Saturday morning is still fine.
    late = _conv(created_at=utc(2025, 1, 17, 18, 50), waiting_since=utc(2025, 1, 17, 18, 50))
    first = clocks(late, policy, h, utc(2025, 1, 18, 9, 0))[0]
    assert first.kind == "first_response" and first.state == "ok" and round(first.elapsed_minutes) == 10
    assert clocks(_conv(status="resolved"), policy, h, utc(2025, 1, 21)) == []
