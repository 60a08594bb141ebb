"""Settings from environment variables prefixed WHATSAPP_HANDLER_ (see .env.example)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHATSAPP_HANDLER_", env_file=".env", extra="ignore")

    # With no URL the service runs on an embedded, project-local cluster it manages itself.
    database_url: SecretStr | None = Field(default=None, description="postgresql:// URL of an existing server")
    embedded_dir: Path = Field(default=PROJECT_DIR / ".local" / "postgres", description="embedded cluster's home")
    embedded_port: int = Field(default=54329, ge=1024, le=65535)
    embedded_database: str = Field(default="whatsapp_handler", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pg_bindir: Path = Field(default=Path("/usr/lib/postgresql/15/bin"))

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")


def get_settings() -> Settings:
    return Settings()
