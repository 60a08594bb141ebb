"""Settings from environment variables prefixed WHATSAPP_HANDLER_ (see .env.example and docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.compare import MAX_KEY_LENGTH

if TYPE_CHECKING:
    from app.providers.base import Provider

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The schema's e164 domain (core/e164), checked early; tests/test_ingest_rules.py holds the two equal.
E164 = r"^\+[1-9][0-9]{6,14}$"
MIB = 1024 * 1024
# A channel's secret is all an unauthenticated caller has to guess (Evolution's apikey is even sent
# as is): Meta app secrets and Twilio auth tokens are 32 hex digits, Evolution's generated instance
# tokens are UUIDs (36); 16 characters, as for the OTP API keys, refuses only placeholders.
MIN_SECRET_LENGTH = 16


class ChannelConfig(BaseModel):
    """One business number on one provider, and the secret its webhooks are checked with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # One of app/providers/ (its module's NAME).
    provider: str
    # Meta phone_number_id, Twilio sender "whatsapp:+E164", Evolution instance name (the DB's shape rule).
    ref: str = Field(pattern=r"^[A-Za-z0-9_:+.@-]{1,128}$")
    phone: str = Field(pattern=E164)
    name: str = Field(min_length=1, max_length=100)
    # Meta app secret, Twilio auth token (or SharedKey secret), Evolution instance apikey.
    secret: SecretStr
    # Meta's GET handshake only.
    verify_token: SecretStr | None = Field(default=None, min_length=1)
    # The business the number speaks for: terms accepted and erasure asked for in a
    # conversation count for the channels of one brand. Unset: the channel is a brand of its own.
    brand: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")

    # Sending (the worker). The provider's API root; Meta and Twilio default to theirs,
    # an Evolution server has no default.
    api_base_url: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$")
    # Meta: the system user's access token. Twilio: the account SID (the secret above is its auth token).
    access_token: SecretStr | None = Field(default=None, min_length=1)
    account_sid: str | None = Field(default=None, pattern=r"^AC[0-9a-fA-F]{32}$")
    # Meta: the WhatsApp Business Account the number belongs to, whose templates `templates sync` lists.
    waba_id: str | None = Field(default=None, pattern=r"^[0-9]{1,32}$")
    # OTP codes: Meta's authentication template (and its language), or Twilio's ContentSid;
    # Twilio without one and Evolution send the code as text.
    otp_template: str = Field(default="otp_code", min_length=1, max_length=512)
    otp_template_language: str = Field(default="en_US", pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")
    # The header carrying an idempotency key, for a provider (or a gateway in front of it) that
    # honours one; without it a message whose outcome is unknown is never sent a second time.
    idempotency_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        # Not pydantic's min_length: its message would tell the secret's length.
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"a channel's secret needs at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        providers = _providers()
        if value not in providers:
            # The error pydantic gives for a Literal of the providers' names.
            names = [f"'{name}'" for name in providers]
            expected = f"{', '.join(names[:-1])} or {names[-1]}"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    @model_validator(mode="after")
    def _provider_rules(self) -> ChannelConfig:
        """Each provider's own rules (app/providers/<name>.py), and its settings on its channels only."""
        providers = _providers()
        provider = providers[self.provider]
        refusal = provider.config_refusal(self)
        if refusal:
            raise ValueError(refusal)
        for name in PROVIDER_FIELDS:
            if getattr(self, name) is not None and name not in provider.CHANNEL_FIELDS:
                owners = " and ".join(p.TITLE for p in providers.values() if name in p.CHANNEL_FIELDS)
                raise ValueError(f"{name} is for {owners} channels only")
        return self


# The channel settings that belong to some providers only (each provider's CHANNEL_FIELDS names its own).
PROVIDER_FIELDS = ("verify_token", "access_token", "account_sid", "waba_id")


def _providers() -> dict[str, Provider]:
    # Imported when a channel is read: the providers' modules import these settings.
    from app.providers import PROVIDERS

    return PROVIDERS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHATSAPP_HANDLER_", env_file=".env", extra="ignore")

    # With no URL the service runs on an embedded, project-local cluster it manages itself.
    database_url: SecretStr | None = Field(default=None, description="postgresql:// URL of an existing server")
    # The HTTP app's own login (granted whatsapp_handler_relay); unset = the URL above, or on the
    # embedded cluster the relay login that serve makes.
    relay_database_url: SecretStr | None = None
    embedded_dir: Path = Field(default=PROJECT_DIR / ".local" / "postgres", description="embedded cluster's home")
    embedded_port: int = Field(default=54329, ge=1024, le=65535)
    embedded_database: str = Field(default="whatsapp_handler", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pg_bindir: Path = Field(default=Path("/usr/lib/postgresql/15/bin"))

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    # Metrics are per process: more than one worker splits the counters between them.
    http_workers: int = Field(default=1, ge=1, le=64)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    channels: list[ChannelConfig] = Field(default_factory=list)
    # The URL providers post to, as they see it (Twilio signs it); the relay usually sits behind a proxy.
    public_base_url: str | None = None
    otp_api_keys: list[SecretStr] = Field(default_factory=list)
    # Meta sends up to 3 MB.
    max_body_bytes: int = Field(default=4 * MIB, ge=1024, le=64 * MIB)
    # Seconds in which a request's whole body must arrive once its headers are in (else 408);
    # Twilio gives up after 15 s, and 3 MB take 10 s at 2.4 Mbit/s.
    body_timeout: float = Field(default=10.0, gt=0, le=300)
    # granian's limits (serve): seconds to read a request's headers, counted from the connection's
    # opening or the previous answer, so an idle connection is closed after it too (granian takes
    # 1-60); connections served at once per worker, the rest wait in the listen backlog.
    http_header_timeout: float = Field(default=10.0, ge=1, le=60)
    http_backpressure: int = Field(default=256, ge=1, le=65535)

    pool_min_size: int = Field(default=2, ge=1, le=100)
    pool_max_size: int = Field(default=10, ge=1, le=100)
    # How long a request waits for a free connection before it is answered 503.
    pool_timeout: float = Field(default=2.0, gt=0, le=60)
    # How long the pool retries a lost connection (backing off) before it gives up and lets the next
    # request try at once: it bounds how long the relay takes to notice that the database is back.
    pool_reconnect_timeout: float = Field(default=10.0, ge=1, le=300)
    # Concurrent ingest calls per provider and worker; webhooks arriving while all are busy wait
    # and go together, up to ingest_batch_max in one call (1 = never together).
    ingest_slots: int = Field(default=4, ge=1, le=100)
    ingest_batch_max: int = Field(default=100, ge=1, le=1000)
    # Per statement on the relay's connections; 0 keeps the server's setting.
    statement_timeout_ms: int = Field(default=5000, ge=0)
    # Off behind a transaction-mode pooler (pgbouncer), which cannot keep them.
    prepared_statements: bool = True

    # The delivery worker. Its own login (granted whatsapp_handler_worker); unset = database_url, or
    # on the embedded cluster the worker login that serve makes.
    worker_database_url: SecretStr | None = None
    # Sends under way at once, and messages claimed per query.
    worker_concurrency: int = Field(default=64, ge=1, le=1000)
    worker_batch: int = Field(default=100, ge=1, le=1000)
    # A claimed message comes back to the queue after this long if the worker never settles it;
    # longer than provider_timeout, so that a slow answer is not taken for a dead worker.
    worker_visibility_timeout: int = Field(default=60, ge=2, le=3600)
    worker_poll_interval: float = Field(default=0.5, gt=0, le=60)
    # How often the worker moves campaign recipients into the queue when the last call had no
    # more to move (worker_campaigns; each message waits for its turn, so a second is plenty).
    campaign_dispatch_interval: float = Field(default=1.0, gt=0, le=60)
    worker_max_attempts: int = Field(default=8, ge=1, le=100)
    # Exponential backoff between attempts (seconds): base * 2^(attempt-1), capped, with jitter.
    worker_backoff_base: float = Field(default=1.0, gt=0, le=3600)
    worker_backoff_max: float = Field(default=300.0, gt=0, le=86400)
    provider_timeout: float = Field(default=10.0, gt=0, le=300)
    provider_connect_timeout: float = Field(default=3.0, gt=0, le=60)
    # Transient failures in a row that open a channel's breaker, and how long it stays open.
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown: float = Field(default=30.0, gt=0, le=3600)
    # The worker's own /metrics (Prometheus); 0 = none.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http(s) URL without query or fragment, such as https://hooks.example.com")
        return value.rstrip("/")

    @field_validator("otp_api_keys")
    @classmethod
    def _strong_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(not MIN_SECRET_LENGTH <= len(key.get_secret_value()) <= MAX_KEY_LENGTH for key in keys):
            raise ValueError(f"every OTP API key has {MIN_SECRET_LENGTH} to {MAX_KEY_LENGTH} characters")
        return keys

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.pool_max_size < self.pool_min_size:
            raise ValueError("pool_max_size must be at least pool_min_size")
        seen: set[tuple[str, str]] = set()
        for channel in self.channels:
            key = (channel.provider, channel.ref)
            if key in seen:
                raise ValueError(f"channel {channel.provider} {channel.ref} is configured twice")
            seen.add(key)
        if self.worker_visibility_timeout <= self.provider_timeout:
            raise ValueError("worker_visibility_timeout must be longer than provider_timeout")
        providers = _providers()
        for name in sorted({c.provider for c in self.channels}, key=list(providers).index):
            for setting, why in providers[name].REQUIRED_SETTINGS.items():
                if getattr(self, setting) is None:
                    raise ValueError(f"{providers[name].TITLE} channels need {setting}: {why}")
        return self


def get_settings() -> Settings:
    return Settings()
