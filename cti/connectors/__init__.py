"""CRM connectors: pick the one the settings name, wrapped in the timeout + circuit-breaker guard."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from cti.cases import CaseStore
from cti.connectors.base import (
    CaseInput,
    CaseUpdate,
    Connector,
    CrmCase,
    CrmError,
    CrmRejected,
    CrmUnavailable,
    Person,
)
from cti.connectors.guard import BreakerState, GuardedConnector

__all__ = ["BreakerState", "CaseInput", "CaseUpdate", "Connector", "CrmCase", "CrmConfigError", "CrmError",
           "CrmRejected", "CrmUnavailable", "GuardedConnector", "Person", "check_settings",
           "make_connector"]

MIN_WEBHOOK_SECRET = 16


class CrmConfigError(ValueError):
    """A CRM setting is missing or malformed; the message names the environment variable."""


def _env(field: str) -> str:
    return f"SWITCHBOARD_{field.upper()}"


def _required(settings: Any, field: str, crm: str) -> str:
    value = getattr(settings, field, None)
    if value is not None and hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if not value or not str(value).strip():
        raise CrmConfigError(f"{_env(field)} is required when SWITCHBOARD_CRM={crm}")
    return str(value).strip()


def _url(settings: Any, field: str, crm: str, *, required: bool = True) -> str | None:
    value = _required(settings, field, crm) if required else getattr(settings, field, None)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CrmConfigError(f"{_env(field)}: {value!r} is not an http(s) URL")
    return value


def _dynamics_args(settings: Any) -> dict[str, Any]:
    crm = "dynamics"
    return {"org_url": str(_url(settings, "dynamics_org_url", crm)),
            "tenant": _required(settings, "dynamics_tenant", crm),
            "client_id": _required(settings, "dynamics_client_id", crm),
            "client_secret": _required(settings, "dynamics_client_secret", crm),
            "token_url": _url(settings, "dynamics_token_url", crm, required=False)}


def _webhook_args(settings: Any) -> dict[str, Any]:
    url = str(_url(settings, "webhook_url", "webhook"))
    secret = _required(settings, "webhook_secret", "webhook")
    if len(secret) < MIN_WEBHOOK_SECRET:
        raise CrmConfigError(f"{_env('webhook_secret')} must be at least {MIN_WEBHOOK_SECRET} characters")
    return {"base_url": url, "secret": secret}


def check_settings(settings: Any) -> None:
    """Raise `CrmConfigError` naming the first missing or malformed CRM setting; builds nothing. For `serve`
    to call before it starts, so the error is one line instead of a failed lifespan."""
    crm = getattr(settings, "crm", "builtin")
    if crm == "dynamics":
        _dynamics_args(settings)
    elif crm == "webhook":
        _webhook_args(settings)
    elif crm != "builtin":
        raise CrmConfigError(f"SWITCHBOARD_CRM: {crm!r} is not one of builtin, dynamics, webhook")


def make_connector(settings: Any, case_store: CaseStore | None) -> GuardedConnector:
    """The CRM connector `settings.crm` names, guarded by `settings.crm_timeout_s` and the breaker settings.

    Raises `CrmConfigError` naming the missing or malformed setting, so `serve` stops at start-up."""
    check_settings(settings)
    crm = getattr(settings, "crm", "builtin")
    inner: Connector
    if crm == "dynamics":
        from cti.connectors.dynamics import DynamicsConnector
        inner = DynamicsConnector(**_dynamics_args(settings))
    elif crm == "webhook":
        from cti.connectors.webhook import WebhookConnector
        inner = WebhookConnector(**_webhook_args(settings))
    else:
        if case_store is None:
            raise CrmConfigError("SWITCHBOARD_CRM=builtin needs the case store")
        from cti.connectors.builtin import BuiltinConnector
        inner = BuiltinConnector(case_store)
    return GuardedConnector(inner, timeout_s=float(getattr(settings, "crm_timeout_s", 2.0)),
                            failures_to_open=int(getattr(settings, "crm_failures_to_open", 5)),
                            open_for_s=float(getattr(settings, "crm_open_for_s", 30.0)))
