"""Process settings: `SWITCHBOARD_*` environment variables (pydantic-settings), with embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    telephony: Literal["embedded", "ari"] = Field(
        default="embedded", description="voice back end: embedded SIP (pjsua2) or Asterisk through ARI")
    sip_host: str = Field(default="127.0.0.1", description="SIP and RTP bind address")
    sip_port: int = Field(default=5060, ge=0, le=65535, description="SIP over UDP and TCP")
    rtp_port_start: int = Field(default=20000, gt=0, le=65535, description="first RTP port")
    max_calls: int = Field(default=100, ge=0, description="concurrent inbound calls; over it callers get 503")
    # CRM connector (cti/connectors): which CRM the screen-pop and the desk talk to
    crm: Literal["builtin", "dynamics", "webhook"] = Field(default="builtin", description="CRM connector")
    crm_timeout_s: float = Field(default=2.0, gt=0, description="a CRM call taking longer reads as unavailable")
    crm_failures_to_open: int = Field(default=5, ge=1, description="failures in a row that open the breaker")
    crm_open_for_s: float = Field(default=30.0, gt=0, description="how long an open breaker fails fast")
    dynamics_org_url: str | None = Field(default=None, description="e.g. https://lakeview.crm3.dynamics.com")
    dynamics_tenant: str | None = Field(default=None, description="Entra ID tenant id or domain")
    dynamics_client_id: str | None = Field(default=None, description="app registration (client) id")
    dynamics_client_secret: SecretStr | None = Field(default=None, description="app registration secret")
    dynamics_token_url: str | None = Field(default=None, description="override the Microsoft token endpoint")
    webhook_url: str | None = Field(default=None, description="base URL of the CRM web service")
    webhook_secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key for request signatures")

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'switchboard.db').resolve()}"
