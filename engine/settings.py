"""Process settings: `SWITCHBOARD_*` environment variables (pydantic-settings), with embedded defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    config: Path = Field(default=Path("config/switchboard.yaml"), description="site configuration file")
    data_dir: Path = Field(default=Path("var"), description="SQLite file and media live here")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    redis_url: str | None = Field(default=None, description="Redis for the event bus; default in-process")
    redis_stream: str = "switchboard:events"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    token_ttl_s: int = Field(default=8 * 3600, gt=0)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    tick_ms: int = Field(default=200, gt=0, description="how often the engine fires ACD timers")
    snapshot_every: int = Field(default=5000, gt=0, description="journal entries between snapshots")
    log_level: str = "INFO"

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'switchboard.db').resolve()}"
