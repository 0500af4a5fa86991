"""Slot extraction: order numbers, emails, phone numbers, amounts, dates, postcodes, names.

Rules, not a model: these slots have regular shapes, and a rule that misses is easy
to see and fix. Phone numbers go through `phonenumbers` so only valid numbers are
kept, in E.164 form.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from typing import Any

import phonenumbers

from caredesk.ai.prefilter import gate


@dataclass(frozen=True, slots=True)
class Slot:
    type: str  # order_number | email | phone | amount | date | postcode | name
    value: str  # normalised value
    text: str  # as written
    start: int
    end: int
    currency: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["currency"] is None:
            del d["currency"]
        return d


EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
ORDER = re.compile(
    r"(?:\b(?:order|ref(?:erence)?|booking|ticket|case|invoice|tracking|confirmation)"
    r"(?:\s+(?:no\.?|number|num|id|code|#))?\s*[:#]?\s*|#)"
    r"(?P<id>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{3,19})\b",
    re.IGNORECASE,
)
_SYMBOLS = {
    "$": "USD",
    "£": "GBP",
    "€": "EUR",
    "¥": "JPY",
    "₹": "INR",
    "us$": "USD",
    "a$": "AUD",
    "c$": "CAD",
}
_CODES = r"USD|GBP|EUR|JPY|INR|AUD|CAD|CHF|SEK|NOK|DKK|PLN|NZD|MXN|BRL|ZAR"
_WORDS = {
    "dollars": "USD",
    "dollar": "USD",
    "bucks": "USD",
    "pounds": "GBP",
    "pound": "GBP",
    "quid": "GBP",
    "euros": "EUR",
    "euro": "EUR",
    "rupees": "INR",
    "yen": "JPY",
}
_NUM = r"\d{1,3}(?:[,\s]\d{3})+(?:\.\d{1,2})?|\d+(?:[.,]\d{1,2})?"
AMOUNT = re.compile(
    rf"(?P<sym>US\$|A\$|C\$|[$£€¥₹])\s?(?P<n1>{_NUM})(?:\s?(?P<k1>k)\b)?"
    rf"|(?P<n2>{_NUM})\s?(?P<code>{_CODES}|dollars?|bucks|pounds?|quid|euros?|rupees|yen)\b"
    rf"|\b(?P<code2>{_CODES})\s?(?P<n3>{_NUM})",
    re.IGNORECASE,
)
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for m in names
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
DATE = re.compile(
    r"\b(?P<iso>\d{4}-\d{2}-\d{2})\b"
    r"|\b(?P<d1>\d{1,2})[/.](?P<m1>\d{1,2})[/.](?P<y1>\d{2,4})\b"
    rf"|\b(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon2>{_MONTH_RE})\.?(?:,?\s+(?P<y2>\d{{4}}))?\b"
    rf"|\b(?P<mon3>{_MONTH_RE})\.?\s+(?P<d3>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<y3>\d{{4}}))?\b"
    r"|\b(?P<rel>today|yesterday|tomorrow|last\s+(?:week|month|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday)|(?:on\s+)?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b",
    re.IGNORECASE,
)
UK_POSTCODE = re.compile(r"\b(?P<pc>[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})\b", re.IGNORECASE)
US_ZIP = re.compile(
    r"\b(?:zip(?:\s?code)?|postcode|postal code)\s*(?:is|:)?\s*(?P<pc>\d{5}(?:-\d{4})?)\b", re.I
)
_NAME_WORD = r"[A-Z][a-z'’-]+"
NAME = re.compile(
    rf"\b(?:[Mm]y name is|[Mm]y name's|[Tt]his is|[Ii] am|[Ii]'m|[Nn]ame:)\s+(?P<n1>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
    rf"|(?:^|\n)\s*(?:[Tt]hanks|[Tt]hank you|[Rr]egards|[Bb]est|[Cc]heers|[Kk]ind regards|[Ss]incerely),?\s*\n\s*"
    rf"(?P<n2>{_NAME_WORD}(?:\s+{_NAME_WORD})?)\s*$"
)
# Words that follow "I am"/"I'm" without being a name.
_NOT_NAMES = {
    "Sorry",
    "Not",
    "Still",
    "Very",
    "So",
    "Really",
    "Trying",
    "Writing",
    "Going",
    "Looking",
    "Happy",
    "Unable",
    "Getting",
    "Having",
    "Waiting",
    "Calling",
    "Contacting",
    "Just",
    "Now",
    "Also",
    "The",
    "Your",
    "A",
    "An",
    "In",
    "On",
    "At",
    "Here",
    "Fed",
    "Done",
    "Afraid",
    "Worried",
    "Disappointed",
    "Confused",
}


# Of these, `select(text)` keeps the patterns whose words the text holds (caredesk.ai.prefilter).
_GATE = gate([EMAIL, ORDER, AMOUNT, DATE, UK_POSTCODE, US_ZIP, NAME])
_DIGIT = re.compile(r"\d")


def _amount(m: re.Match[str]) -> Slot:
    if m.group("n1"):
        cur = _SYMBOLS[m.group("sym").lower()]
        raw = m.group("n1")
    elif m.group("n2"):
        code = m.group("code").lower()
        cur = _WORDS.get(code, code.upper())
        raw = m.group("n2")
    else:
        cur = m.group("code2").upper()
        raw = m.group("n3")
    if re.fullmatch(r"\d+,\d{1,2}", raw):  # "12,50" written European style
        raw = raw.replace(",", ".")
    number = float(re.sub(r"[,\s]", "", raw))
    if m.groupdict().get("k1"):
        number *= 1000
    return Slot("amount", f"{number:.2f}", m.group(0), m.start(), m.end(), currency=cur)


def _date(m: re.Match[str], today: dt.date) -> Slot | None:
    text = m.group(0)
    try:
        if m.group("iso"):
            value = dt.date.fromisoformat(m.group("iso")).isoformat()
        elif m.group("d1"):
            # Day first (most of the world); swap when the "month" cannot be one.
            d, mo, y = int(m.group("d1")), int(m.group("m1")), int(m.group("y1"))
            if mo > 12 and d <= 12:
                d, mo = mo, d
            y = y + 2000 if y < 100 else y
            value = dt.date(y, mo, d).isoformat()
        elif m.group("d2") or m.group("d3"):
            d = int(m.group("d2") or m.group("d3"))
            mo = _MONTHS[(m.group("mon2") or m.group("mon3")).lower()]
            y_text = m.group("y2") or m.group("y3")
            y = int(y_text) if y_text else today.year
            value = dt.date(y, mo, d).isoformat()
        else:
            rel = m.group("rel").lower()
            offsets = {"today": 0, "yesterday": -1, "tomorrow": 1}
            value = (today + dt.timedelta(days=offsets[rel])).isoformat() if rel in offsets else rel
    except ValueError:
        return None
    return Slot("date", value, text, m.start(), m.end())


def _phones(text: str, region: str) -> list[Slot]:
    found = []
    for match in phonenumbers.PhoneNumberMatcher(text, region):
        if phonenumbers.is_valid_number(match.number):
            e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            found.append(Slot("phone", e164, match.raw_string, match.start, match.end))
    return found


def extract_slots(text: str, region: str = "GB", today: dt.date | None = None) -> list[Slot]:
    """All slots found in `text`, in order of position; overlapping finds keep the first kind."""
    today = today or dt.date.today()
    may = _GATE.select(text)  # a pattern left out cannot match: its loop would find nothing
    slots: list[Slot] = []
    if EMAIL in may:
        slots += [
            Slot("email", m.group(0).lower(), m.group(0), m.start(), m.end()) for m in EMAIL.finditer(text)
        ]
    if ORDER in may:
        slots += [
            Slot("order_number", m.group("id").upper(), m.group("id"), m.start("id"), m.end("id"))
            for m in ORDER.finditer(text)
        ]
    if AMOUNT in may:
        slots += [_amount(m) for m in AMOUNT.finditer(text)]
    if _DIGIT.search(text):  # phonenumbers' matcher needs a digit (its pattern starts a number at \d)
        slots += _phones(text, region)
    if DATE in may:
        slots += [s for m in DATE.finditer(text) if (s := _date(m, today))]
    if UK_POSTCODE in may:
        for m in UK_POSTCODE.finditer(text):
            pc = m.group("pc").upper().replace(" ", "")
            slots.append(Slot("postcode", f"{pc[:-3]} {pc[-3:]}", m.group(0), m.start(), m.end()))
    if US_ZIP in may:
        slots += [
            Slot("postcode", m.group("pc"), m.group("pc"), m.start("pc"), m.end("pc"))
            for m in US_ZIP.finditer(text)
        ]
    for m in NAME.finditer(text) if NAME in may else ():
        group = "n1" if m.group("n1") else "n2"
        name = m.group(group)
        words = name.split()
        while words and words[-1] in _NOT_NAMES:
            words.pop()
        if words and words[0] not in _NOT_NAMES:
            value = " ".join(words)
            slots.append(Slot("name", value, value, m.start(group), m.start(group) + len(value)))
    # Earlier kinds win overlaps (an email's digits are not a phone; an order id not an amount).
    kept: list[Slot] = []
    for slot in slots:
        if all(slot.end <= k.start or slot.start >= k.end for k in kept):
            kept.append(slot)
    return sorted(kept, key=lambda s: s.start)
