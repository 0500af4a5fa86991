"""Business hours and business time: SLA clocks only run while the business is open.

Configured per account in `accounts.settings`: `timezone` (IANA name) and `business_hours`, e.g.
{"mon-fri": "08:00-20:00", "sat": "10:00-16:00"}. No business hours configured means 24/7.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True)
class BusinessHours:
    tz: dt.tzinfo
    # per weekday (0 = Monday): list of (start minute, end minute) in local time; None = always open
    week: dict[int, list[tuple[int, int]]] | None

    @property
    def always_open(self) -> bool:
        return self.week is None


def _minutes(hhmm: str) -> int:
    h, m = hhmm.strip().split(":")
    value = int(h) * 60 + int(m)
    if not 0 <= value <= 24 * 60:
        raise ValueError(hhmm)
    return value


def _days(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.lower().replace(" ", "").split(","):
        if "-" in part:
            a, b = part.split("-")
            i, j = DAYS.index(a[:3]), DAYS.index(b[:3])
            out.extend(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif part:
            out.append(DAYS.index(part[:3]))
    return out


def parse_hours(settings: dict[str, Any]) -> BusinessHours:
    try:
        tz: dt.tzinfo = ZoneInfo(str(settings.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        tz = dt.UTC
    raw = settings.get("business_hours")
    if not raw or not isinstance(raw, dict):
        return BusinessHours(tz, None)
    week: dict[int, list[tuple[int, int]]] = {d: [] for d in range(7)}
    for days, spans in raw.items():
        try:
            for d in _days(str(days)):
                for span in str(spans).split(","):
                    a, b = span.split("-")
                    week[d].append((_minutes(a), _minutes(b)))
        except ValueError:
            continue  # a malformed entry is ignored rather than closing the business
    return BusinessHours(tz, {d: sorted(v) for d, v in week.items()})


def _local(h: BusinessHours, utc_naive: dt.datetime) -> dt.datetime:
    return utc_naive.replace(tzinfo=dt.UTC).astimezone(h.tz)


def _open_intervals(
    h: BusinessHours, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Open intervals (aware, local) that overlap [start, end) given as naive UTC."""
    assert h.week is not None
    ls, le = _local(h, start), _local(h, end)
    out = []
    day = ls.date() - dt.timedelta(days=1)
    while day <= le.date():
        for a, b in h.week[day.weekday()]:
            base = dt.datetime.combine(day, dt.time(0), tzinfo=h.tz)
            s, e = base + dt.timedelta(minutes=a), base + dt.timedelta(minutes=b)
            s, e = max(s, ls), min(e, le)
            if s < e:
                out.append((s, e))
        day += dt.timedelta(days=1)
    return out


def business_seconds(h: BusinessHours, start: dt.datetime, end: dt.datetime) -> float:
    if end <= start:
        return 0.0
    if h.always_open:
        return (end - start).total_seconds()
    return sum((e - s).total_seconds() for s, e in _open_intervals(h, start, end))


def add_business_seconds(h: BusinessHours, start: dt.datetime, seconds: float) -> dt.datetime:
    """The naive-UTC moment when `seconds` of business time have passed after `start`."""
    if h.always_open or seconds <= 0:
        return start + dt.timedelta(seconds=max(0.0, seconds))
    left = seconds
    cursor = start
    for _ in range(400):  # at most ~a year of weeks: a week with no open hours never ends the loop otherwise
        window_end = cursor + dt.timedelta(days=7)
        for s, e in _open_intervals(h, cursor, window_end):
            span = (e - s).total_seconds()
            if span >= left:
                return (s + dt.timedelta(seconds=left)).astimezone(dt.UTC).replace(tzinfo=None)
            left -= span
        cursor = window_end
    return cursor


def is_open(h: BusinessHours, at: dt.datetime) -> bool:
    if h.always_open:
        return True
    return bool(_open_intervals(h, at, at + dt.timedelta(seconds=1)))


def next_open(h: BusinessHours, at: dt.datetime) -> dt.datetime | None:
    """Naive UTC of the next opening (or `at` if open now); None if never open."""
    if is_open(h, at):
        return at
    assert h.week is not None
    iv = _open_intervals(h, at, at + dt.timedelta(days=8))
    return iv[0][0].astimezone(dt.UTC).replace(tzinfo=None) if iv else None
