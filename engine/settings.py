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
    ari_url: str = Field(default="http://127.0.0.1:8088/ari", description="Asterisk ARI base URL")
    ari_user: str = Field(default="switchboard", description="ARI user from ari.conf")
    ari_password: str = Field(default="", description="ARI password from ari.conf")
    ari_app: str = Field(default="switchboard", description="Stasis app the dialplan sends calls to")
    sip_enabled: bool = Field(default=False, description="embedded SIP back end (serve turns it on unless --no-sip)")
    sip_host: str = Field(default="127.0.0.1", description="SIP and RTP bind address")
    sip_port: int = Field(default=5060, ge=0, le=65535, description="SIP over UDP and TCP")
    rtp_port_start: int = Field(default=20000, gt=0, le=65535, description="first RTP port")
    max_calls: int = Field(default=100, ge=0, description="concurrent inbound calls; over it callers get 503")

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'switchboard.db').resolve()}"
