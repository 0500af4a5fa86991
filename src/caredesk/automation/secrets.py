"""Connector credentials, encrypted at rest with Fernet under a key derived from settings.secret_key."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from caredesk.automation.models import AutomationSecret
from caredesk.platform.errors import Invalid, NotFound
from caredesk.platform.models import utcnow


def fernet_for(secret_key: str) -> Fernet:
    # A dedicated derivation so the connector key differs from the cookie-signing use of the same secret.
    digest = hashlib.sha256(b"caredesk/automation-secrets/v1:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(secret_key: str, value: str) -> str:
    return fernet_for(secret_key).encrypt(value.encode()).decode()


def decrypt(secret_key: str, token: str) -> str:
    try:
        return fernet_for(secret_key).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise Invalid("a connector secret cannot be decrypted (was settings.secret_key changed?)") from exc


def set_secret(session: Session, account_id: int, secret_key: str, name: str, value: str) -> None:
    if not name or len(name) > 100:
        raise Invalid("secret names are 1-100 characters")
    row = session.execute(
        select(AutomationSecret).where(
            AutomationSecret.account_id == account_id, AutomationSecret.name == name
        )
    ).scalar_one_or_none()
    cipher = encrypt(secret_key, value)
    if row is None:
        session.add(AutomationSecret(account_id=account_id, name=name, ciphertext=cipher))
    else:
        row.ciphertext, row.updated_at = cipher, utcnow()
    session.flush()


def get_secret(session: Session, account_id: int, secret_key: str, name: str) -> str:
    cipher = session.execute(
        select(AutomationSecret.ciphertext).where(
            AutomationSecret.account_id == account_id, AutomationSecret.name == name
        )
    ).scalar()
    if cipher is None:
        raise NotFound(f"connector secret {name!r} is not set")
    return decrypt(secret_key, cipher)


def secret_names(session: Session, account_id: int) -> list[str]:
    return list(
        session.execute(
            select(AutomationSecret.name)
            .where(AutomationSecret.account_id == account_id)
            .order_by(AutomationSecret.name)
        ).scalars()
    )
