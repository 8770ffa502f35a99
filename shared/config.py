"""One typed settings object for every service (environment prefix HOUSINGFIRST_)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings read from the environment; names are part of the public contract (API.md)."""

    model_config = SettingsConfigDict(env_prefix="HOUSINGFIRST_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    offer_ttl_hours: float = Field(default=72, gt=0)
    allow_private_webhook_targets: bool = False
    # `housingfirst up` sets this: loopback receivers only, for trying the service on one machine.
    allow_loopback_webhook_targets: bool = False
    # Whole-request limit for one webhook attempt (Standard Webhooks: 15 s); tests shorten it.
    webhook_timeout_seconds: float = Field(default=15, gt=0, le=60)
    # Each process of a notifier worker keeps its sending threads on one core of its own
    # (services/notifier/affinity.py); off where several notifier workers share a machine.
    pin_sender_processes: bool = True
    log_level: str = "INFO"
    # Requests per minute per API key (a burst of this many is allowed at once).
    rate_limit_per_minute: int = Field(default=1200, ge=1)
    max_body_bytes: int = Field(default=65_536, ge=1024)
    relay_after_seconds: float = Field(default=5, ge=0)
    # Published but not finished by every consumer after this long: the message was lost (the
    # broker lost its data, or a worker died and its message is gone); publish it again. Longer
    # than the Redis visibility timeout, after which the broker itself redelivers.
    relay_unfinished_after_seconds: float = Field(default=180, ge=1)

    @model_validator(mode="after")
    def _embedded_defaults(self) -> "Settings":
        """Fill the embedded defaults (SQLite, serverless broker) under the data dir."""
        data_dir = self.data_dir.resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{data_dir / 'housingfirst.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{data_dir / 'broker.db'}"
        return self

    @property
    def embedded(self) -> bool:
        """True when running on SQLite (one writer at a time, no advisory locks)."""
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
