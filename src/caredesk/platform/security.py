"""Password hashing, random tokens, HMAC helpers and signed values."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

# Moderate cost: login must stay responsive on a 2-core machine while resisting offline guessing.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token(prefix: str = "", nbytes: int = 24) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """Tokens are stored as digests only: a leaked database does not leak working credentials."""
    return hashlib.sha256(token.encode()).hexdigest()


def hmac_sha256_hex(key: bytes | str, message: bytes | str) -> str:
    k = key.encode() if isinstance(key, str) else key
    m = message.encode() if isinstance(message, str) else message
    return hmac.new(k, m, hashlib.sha256).hexdigest()


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    aa = a.encode() if isinstance(a, str) else a
    bb = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(aa, bb)


class Signer:
    """Signed, timestamped values (session cookies, visitor tokens)."""

    def __init__(self, secret: str, salt: str) -> None:
        self._s = URLSafeTimedSerializer(secret, salt=salt)

    def dumps(self, value: object) -> str:
        return self._s.dumps(value)

    def loads(self, token: str, max_age: int | None = None) -> object | None:
        try:
            value: object = self._s.loads(token, max_age=max_age)
            return value
        except BadSignature:
            return None
