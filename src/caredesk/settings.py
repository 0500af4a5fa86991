"""Runtime settings, read from the environment (prefix CAREDESK_) and an optional .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREDESK_", env_file=".env", extra="ignore")

    # Storage. SQLite (WAL) is the embedded default; a postgresql+psycopg:// URL selects PostgreSQL.
    database_url: str = "sqlite+aiosqlite:///var/caredesk.db"
    redis_url: str | None = None
    data_dir: Path = Path("var")

    # Secrets: sign session cookies, visitor tokens and encrypt connector credentials.
    secret_key: str = Field(default="dev-insecure-change-me", min_length=8)

    # Jobs
    embedded_worker: bool = True
    job_lease_seconds: float = 60.0
    job_poll_seconds: float = 0.5
    job_max_attempts: int = 8
    # A long-running server's start: load the AI step's language models when the process runs the
    # embedded worker, before it accepts connections (about 350 MB, seconds of CPU; lazily, the first
    # message that needs them freezes the whole process, real-time streams included, for those seconds),
    # then move the startup heap out of the garbage collector's full collections (gc.freeze).
    preload_models: bool = True

    # Real time
    event_retention: int = 100_000  # events kept per account before a client is told to resync
    heartbeat_seconds: float = 20.0

    # Limits (RELIABILITY rule 7)
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 20 * 1_048_576
    max_json_depth: int = 32
    rate_limit_per_minute: int = 6000
    login_attempts_per_minute: int = 10

    public_url: str = "http://127.0.0.1:8000"
    cookie_secure: bool = False
    log_level: str = "info"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
