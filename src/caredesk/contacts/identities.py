"""Normalising identity values so one person's address always resolves to one identity."""

from __future__ import annotations

import functools

import phonenumbers

from caredesk.contacts.models import IDENTITY_KINDS
from caredesk.platform.errors import Invalid


@functools.lru_cache(maxsize=20_000)
def normalize_phone(value: str, default_region: str | None = None) -> str:
    """E.164, e.g. '+4915112345678'. A number without a country code needs `default_region`.

    Cached: the same customers write again and again, and parsing costs ~0.1 ms (failures aren't cached)."""
    raw = value.strip()
    for prefix in ("whatsapp:", "tel:", "sms:"):
        if raw.lower().startswith(prefix):
            raw = raw[len(prefix) :]
    try:
        num = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise Invalid(f"not a phone number: {value!r}") from exc
    if not phonenumbers.is_possible_number(num):
        raise Invalid(f"not a possible phone number: {value!r}")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    v = value.strip().lower()
    if "@" not in v or v.startswith("@") or v.endswith("@") or " " in v:
        raise Invalid(f"not an email address: {value!r}")
    return v


def normalize_identity(kind: str, value: str, default_region: str | None = None) -> str:
    if kind not in IDENTITY_KINDS:
        raise Invalid(f"identity kind must be one of {', '.join(IDENTITY_KINDS)}")
    if kind == "email":
        return normalize_email(value)
    if kind in ("phone", "whatsapp"):
        return normalize_phone(value, default_region)
    v = value.strip()
    if not v or len(v) > 320:
        raise Invalid("identity value must be 1-320 characters")
    return v
